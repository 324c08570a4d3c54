// Command rok-gc is Rok's garbage collector: fenced, epoch-aware mark and
// sweep of the maps and chocks on storage (docs/design.md#gc-rule).
//
// Start here: main.go, which turns the flags into a gc.Config and runs
// gc.Run.
package main
