// Package integration holds the end-to-end tests: real sidecars (the fx
// app) on an embedded multi-member etcd cluster with a seeded installation,
// checked with the invariants of package verify.
//
// Start here: upgrade_test.go (a seeded nodelocal upgrade through a plain
// put of the control key; the master lost during epochs-ca),
// deposed_test.go (a deposed master's stamp refused,
// docs/design.md#leader-fencing), faults_test.go (the fault matrix: kills,
// pauses, partitions, member restarts), gcwindow_test.go and gc_test.go
// (rok-gc against composers rewriting and touching,
// docs/design.md#set-aside-window), and soak_test.go, the randomized fault
// matrix of `make soak`. Most run the real binaries through package
// harness.
package integration
