// Package libmap is the libmap epoch cache on the etcd v3 store
// (docs/design.md#epochs).
//
// Every map and chock on storage has an epoch key /epochs/<scope>/<id>
// holding a decimal epoch; /libmap/epoch holds the current epoch. Stamping
// writes the current epoch for many objects at once; Touch is the
// content-addressed cache look-up a composer makes before writing a chock;
// Advance is what a GC run does first, so that anything stamped or touched
// afterwards is protected from its sweep. The GC reads epochs with their mod
// revision (Get, Scan) and deletes an epoch key only if it is unchanged.
//
// Start here: New returns a Cache (cache.go) with Current, Advance, Touch,
// Stamp, Get, Scan and the deletion helpers Unchanged and OpDelete; the
// Stamper (stamp.go, Cache.NewStamper) stamps a whole scope in batched
// transactions. scope.go names the four scopes and an object's id in the
// cache. v2cleanup.go is the plan's v2-epochs-cleanup step. Why each write
// compares what it does: docs/design.md#epochs and docs/design.md#guards.
package libmap
