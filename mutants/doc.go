// Command mutants is the safety mutant suite (issue 20): each mutant
// removes or weakens one compare or check the project's safety rests on,
// in a copy of the tree, and names the tests that must then fail. A
// mutant the tests do not kill (SURVIVED) is a guard no test protects; a
// mutant whose code is no longer found exactly once (STALE) is a list
// gone out of date. Either fails the run.
//
//	go run ./mutants            # every mutant (make mutants)
//	go run ./mutants -fast      # the fast ones (make mutants-fast, .ci/run)
//	go run ./mutants -only gc-  # mutants whose name matches a regexp
//	go run ./mutants -list      # print the list, run nothing
//	go run ./mutants -only gc-delete-instance -run . # which tests kill it?
//
// The copy lives in one temporary directory for the whole run, so each
// mutant recompiles only the packages its edit touches (the Go build cache
// is keyed by directory, and the directory stays the same).
//
// Start here: list.go is the list (Mutants), one entry per guard with the
// file and exact code it edits (Edit.Find, matched whatever the white
// space), the packages and tests that must kill it, and why the guard
// exists (docs/design.md#guards explains each). mutant.go applies an edit;
// main.go copies the tree, applies each mutant and runs its tests. A new
// guard gets its mutant here; code a mutant targets that moves or changes
// needs its File and Find updated (make test checks every mutant still
// applies).
package main
