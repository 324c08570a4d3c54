// Package verify states what must hold after an upgrade, checked against
// etcd and storage rather than trusted from the run's own report: the demo
// prints these checks, and the end-to-end tests and the fault matrix fail on
// them. Each check reads everything it judges; none of them writes.
//
// Start here: After runs every check of a finished upgrade against a seed
// Manifest (verify.go: Epochs, StorageIntact, V2EpochsGone, FenceReleased,
// and Gateway from gateway.go), each a Check (a name, OK, a detail); AllOK
// sums them. history.go judges how the run got there from etcd's history
// (ReadHistory): LeaderWrites (every master-only write inside its writer's
// term, docs/design.md#leader-fencing), FenceWindow (the fence set once, and
// no epoch key deleted while it was held) and Deletions (what a GC removed,
// docs/design.md#gc-rule).
package verify
