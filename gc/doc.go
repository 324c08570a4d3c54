// Package gc is Rok's garbage collector (docs/design.md#gc-rule): a fenced,
// epoch-aware mark and sweep of the maps and chocks on storage.
//
// A run refuses while the GC fence is set, registers its instance (one per
// node; one cluster-wide for the CA sweep), puts back what an interrupted
// GC left set aside (Recover), advances the epoch to G, marks what the
// roots reach, and sweeps the rest: an object without an epoch is stamped
// with G and kept (a later run may collect it), an object stamped at or
// after G is kept, and an object stamped before G is collected.
//
// Start here: Run (gc.go) is one run, Config says what it sweeps and with
// which keys; mark.go finds the roots, sweep.go decides each unreachable
// object and collects it (deletion, the three steps below), aside.go sets
// files aside, puts them back, and holds Recover; report.go is the Report
// `rok-gc -o json` prints; hooks.go the plan's GC steps. The rule in brief,
// with every compare and what it protects against: docs/design.md#gc-rule
// and docs/design.md#guards.
//
// # Collecting one object
//
// Composers are existing software (composer.Put is their contract): a
// composer touches an object; on "exists" it relies on the file; on
// "missing" it writes the file (temporary name, then rename into place)
// and then stamps it. The GC must never remove a file such a composer
// relies on or has just written, without asking composers for anything
// new. It collects an object in three steps:
//
//  1. move the file aside, to <root>/.rokup-gc/<lease>/<scope>/<name>;
//  2. delete the epoch key in a transaction that holds only while the
//     fence is absent, the instance is unchanged and the key's mod
//     revision is the one read (no touch, no stamp since);
//  3. if it committed, remove the file set aside; if it failed or may
//     have failed, put the file back, never over a file written since.
//
// Why no composer write is lost, step by step:
//
//   - Before step 2 commits, the key exists, so a composer's touch answers
//     "exists" and writes nothing at the object's path; the touch changes
//     the key's mod revision, so step 2 fails and step 3 puts the file
//     back. Nothing was removed: the file was away for one round trip.
//   - After step 2 commits, a touch answers "missing" and the composer
//     writes a new file at the object's path. Step 3 removes only the file
//     set aside in step 1, at another path, so the new file stays.
//   - Whatever is at the object's path at step 1 is what the GC read the
//     epoch of: a composer writes there only after a "missing" answer,
//     and the key exists from the read to step 2's commit.
//   - A GC killed between step 1 and step 3 leaves the file aside. The
//     next GC (before its mark) and the sidecar (at start, then
//     periodically) put back every file of an instance whose lease is no
//     longer alive, whether or not its step 2 committed: a file without
//     an epoch key costs one more GC run; a removed file under a live key
//     would be data lost. A paused GC that wakes up after its lease
//     expired can commit nothing (the instance compare fails), so it puts
//     back too; put back never replaces a file, so the two never clobber
//     each other nor a composer's write.
//
// The cost: while step 2 is in flight the file is away though its key
// exists, so a composer whose touch races that very transaction and reads
// the file at once (rather than relying on it existing) may find it absent
// for one round trip. A grace period instead (keep files younger than T)
// would not close the window at all: a composer's write that lands between
// the key's deletion and the unlink is exactly the young file the check
// would have to see, and checking then unlinking is itself a race.
//
// The package also holds the sidecar's GC hooks: gc-fence, gc-unfence,
// and the pre-upgrade collections gc-precollect and gc-precollect-ca.
package gc
