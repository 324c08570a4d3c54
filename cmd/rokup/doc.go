// Command rokup is the Rok 0.14 upgrade sidecar and its operator commands.
//
// Start here: main.go builds the command tree. sidecar.go is `rokup
// sidecar`, the daemon: it checks the storage roots and runs the fx app of
// package sidecar. runs.go is `rokup start`, `status` and `abort`: start
// writes the control key (writeControl) that the elected master watches
// (docs/design.md#control-protocol), status prints the run record
// (docs/design.md#run-record). fence.go is `rokup fence`. demo.go runs a
// whole upgrade in one process and checks it with package verify; bench.go,
// seed.go and rehearse.go wrap packages bench, seed and rehearse.
package main
