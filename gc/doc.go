// Package gc is Rok's garbage collector (SPEC §5): a fenced, epoch-aware
// mark and sweep of the maps and chocks on storage.
//
// A run refuses while the GC fence is set, registers its instance (one per
// node; one cluster-wide for the CA sweep), advances the epoch to G, marks
// what the roots reach, and sweeps the rest: an object without an epoch is
// stamped with G and kept (a later run may collect it), an object stamped
// at or after G is kept, and an object stamped before G is collected by a
// transaction that holds only while the fence is absent, the instance is
// unchanged and the object's epoch key is as read. The file goes only after
// that transaction commits.
//
// It also holds the sidecar's GC hooks: gc-fence, gc-unfence, and the
// pre-upgrade collections gc-precollect and gc-precollect-ca.
package gc
