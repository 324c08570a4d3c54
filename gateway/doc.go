// Package gateway holds the Rok Gateway's store and its Django-style
// migrations (docs/design.md#gateway-move), in four parts with one job each:
//
//   - the loader (Loader, Migration): migrations registered per app, each
//     with a name, dependencies, and forward and backward functions;
//   - the graph (Graph): dependency order; cycles and missing dependencies
//     are errors;
//   - the executor (Executor): applies or reverts a plan, with a progress
//     callback and no command-line concerns;
//   - the recorder (Recorder): the ledger in v3 at
//     <prefix>/_migrations/<app>/<name>; entries found in v2 at the same
//     (hidden) path count as applied.
//
// The gw app (GW) ships 0001_initial (the v2-era baseline), 0002_v3_store
// (Move: the verified, batched copy of every document from the v2 store to
// the v3 store) and 0003_published_buckets (MarkPublished; Republish undoes
// it once the operator re-publishes).
//
// Start here: GW (gw.go) registers the gw app; NewExecutor (executor.go)
// plans and runs its migrations, for rok-gw-manage and for the plan's
// gw-migrate step (hook.go). Move (move.go) is the v2 → v3 copy and
// RevertMove (revert.go) its undo; MarkPublished and Republish
// (buckets.go) handle the published buckets. Every write carries
// Env.Guard, the master's term (docs/design.md#leader-fencing); the move
// in brief is docs/design.md#gateway-move.
//
// # How the move reads and proves
//
// Move is one pass and a verification, each in its files (move_read.go;
// move_copy.go with move_leases.go; move_verify.go with move_watch.go and
// readback.go). It
// takes v2's index I0 through the leader, then walks v2 once and writes
// every document as it reads it: a create-only compare, several
// transactions in flight while the walk goes on, nothing else under the
// prefix (Gateway 0.14 reads its prefix whole). What the pass read is
// recorded as it goes: an order-independent checksum of the (key, value)
// pairs, 8 bytes of key hash per document, one digest per TTL document,
// the empty directories. A document too large for one transaction, or
// one written in v2 after I0, or a read answered from behind I0 (a lagging
// member), fails the move there, named; what was copied before stays,
// unrecorded, and a re-run or a revert converges. What the move needs to
// resume and revert is one state key outside the prefix (DefaultStateDir
// + prefix): the v3 revisions its runs wrote in, since etcd keeps each
// key's create revision (see RevertMove).
//
// The verification reads v2's index again. When it is still I0, nothing
// in v2 was written, deleted or expired during the pass, so every read
// saw v2 as of I0, and v3 is compared with the pass's checksum: through a
// watch of v3 under the prefix that ran alongside the copy (move_watch.go:
// when the prefix held only the ledger as the pass began, every change
// since was a create, and etcd is recent enough to say the watch caught
// up), else by reading v3 in parallel key ranges. Otherwise, or when v3
// holds anything else under the prefix, v2 is walked again and compared
// key by key with v3, which names
// every difference: a document changed or deleted in v2 after it was
// copied, or created in a directory already read, fails the move; one
// deleted before the pass read it is in neither store, and the copy is
// consistent. Then the other way round (move_extra.go): v3 must hold
// nothing under the prefix but those documents and ledger entries. A
// count of the keys settles it when no document can have expired; else
// v3 is read, and a key v2 does not hold (a copy of a document deleted
// from v2 since an interrupted move, one written beside the move) fails
// it, named, before anything is recorded; Overwrite deletes such keys.
//
// v2 cannot say how large a directory is, and reading one directory per
// request costs a round trip per directory, which on a Gateway store of
// about one document per directory is a round trip per document. So the
// walk measures a few subdirectories of each large family, reads the
// others whole in one request each when the samples are small, and drops
// any answer past a budget (see walker): memory stays bounded whatever the
// store holds.
package gateway
