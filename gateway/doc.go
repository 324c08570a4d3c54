// Package gateway holds the Rok Gateway's store and its Django-style
// migrations (SPEC §7), in four parts with one job each:
//
//   - the loader (Registry, Migration): migrations registered per app, each
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
// # How the move reads and proves
//
// Move has three phases, each in its file (move_read.go, move_copy.go
// with move_leases.go, move_verify.go). The count walks v2 and records what the store
// holds at the start: the v2 index, an order-independent checksum of the
// (key, value) pairs, the TTL documents, the empty directories; an
// oversize document fails the move here, before any write. The count also
// spools the documents to a local temporary file, so the copy writes them
// from local disk rather than asking etcd for the store a second time.
// The copy writes every document with a create-only compare, several
// transactions in flight, and nothing else under the prefix: Gateway 0.14
// reads its prefix whole. What the move needs to resume and revert is one
// state key outside the prefix (DefaultStateDir + prefix): the v3
// revisions its runs wrote in, since etcd keeps each key's create
// revision (see RevertMove). The verification reads v3 back: when v2's
// index is still where the count found it, nothing in v2 was written,
// deleted or expired since, and v3 is read in parallel key ranges and
// compared with the count's checksum; otherwise, or when v3 holds
// anything else under the prefix, v2 is walked again and compared key by
// key, which names what changed.
//
// v2 cannot say how large a directory is, and reading one directory per
// request costs a round trip per directory, which on a Gateway store of
// about one document per directory is a round trip per document. So the
// walk measures a few subdirectories of each large family, reads the
// others whole in one request each when the samples are small, and drops
// any answer past a budget (see walker): memory stays bounded whatever the
// store holds.
package gateway
