package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/fencing"
)

// MoveOptions tune the v2 → v3 move. The zero value takes etcd's limits.
type MoveOptions struct {
	Prefix          string // default /rok/gw
	MaxTxnOps       int    // etcd's --max-txn-ops, default 128
	MaxRequestBytes int    // payload per transaction, default batch.DefaultMaxBytes
	// InFlight is how many transactions are in flight, default
	// DefaultInFlight; the copy keeps up to twice as many in flight while
	// they are small, within the bytes of InFlight full ones.
	InFlight int
	// Deprecated: SpoolDir and SpoolBytes are ignored. The move reads v2
	// once and writes as it reads, so it keeps nothing on local disk.
	SpoolDir   string
	SpoolBytes int64
	// ReadBudget bounds one whole-subtree read of v2, in bytes of answer
	// (default 2 MiB); negative reads v2 a directory at a time.
	ReadBudget int64
	// Force moves even while a Gateway liveness key exists.
	Force bool
	// Overwrite replaces v3 keys that hold other bytes instead of
	// reporting them as conflicts, and deletes the keys under the prefix
	// that v2 does not hold instead of failing on them. Reverting the
	// move does not restore what was overwritten or deleted.
	Overwrite bool
	// StateKey holds what the move needs to resume and revert (the v3
	// revisions it wrote in), outside the Gateway's prefix; default
	// StateKey(Prefix).
	StateKey string
	// Guard goes in the If of every write.
	Guard fencing.Guard
	// Progress, if set, receives the copy phase (documents and bytes so
	// far, no total: v2 cannot tell one cheaply) and the verify phase.
	Progress func(Progress)
}

// DefaultInFlight is how many of the move's transactions are in flight at
// once. etcd commits concurrent transactions together, one fsync for
// many: past batch.DefaultInFlight (8) the copy still gains, and its
// batches are small enough (128 operations, 1.5 MiB at most) that twice
// as many cost little memory. Its transactions of small documents gain
// again at twice that (see MoveOptions.InFlight).
const DefaultInFlight = 16

// MoveReport is what a move found and did.
type MoveReport struct {
	Docs    int64 `json:"docs"`    // documents in v2 (copied or already in v3)
	Bytes   int64 `json:"bytes"`   // their value bytes
	Created int64 `json:"created"` // v3 keys the move created (committed as far as it knows)
	// V3KeysNow, after a copy that stopped early, is how many keys the
	// prefix holds in v3: transactions cut by the stop may have landed
	// though their answer never came, so Created is then a lower bound.
	V3KeysNow   int64 `json:"v3_keys_now,omitempty"`
	Identical   int64 `json:"identical"` // already in v3 with the same bytes
	Overwritten int64 `json:"overwritten"`
	TTLDocs     int64 `json:"ttl_docs"`
	Leases      int64 `json:"leases"`  // leases granted for them (shared by close expiries)
	Expired     int64 `json:"expired"` // TTL documents that expired in v2 during the move
	EmptyDirs   int64 `json:"empty_dirs"`
	// EmptyDirList and ConflictKeys hold the first few, for the report.
	EmptyDirList []string `json:"empty_dir_list,omitempty"`
	Conflicts    int64    `json:"conflicts"`
	ConflictKeys []string `json:"conflict_keys,omitempty"`
	// V3Only counts the keys under the prefix in v3 that are no v2
	// document nor a ledger entry, found once every v2 document was
	// verified (the first listMax in V3OnlyKeys): they fail the move, or
	// with Overwrite are deleted (V3OnlyDeleted).
	V3Only        int64    `json:"v3_only,omitempty"`
	V3OnlyKeys    []string `json:"v3_only_keys,omitempty"`
	V3OnlyDeleted int64    `json:"v3_only_deleted,omitempty"`
	// V2Changes names the documents written, created or deleted in v2
	// after the copy read them, which fail the move (the first listMax
	// of each kind).
	V2Changes []string `json:"v2_changes,omitempty"`
	Alive     []string `json:"alive,omitempty"` // Gateway liveness keys seen
	// LegacyMarkers counts the bookkeeping keys an older rokup left under
	// the prefix, converted into the state key and deleted.
	LegacyMarkers int64     `json:"legacy_markers,omitempty"`
	Txns          int64     `json:"txns"`
	V2Reads       WalkStats `json:"v2_reads"`
	// FastVerify is true when v2's index had not moved since the move
	// began, so v3 was compared with the checksum of what the copy read
	// instead of walking v2 again: by a watch of v3 during the copy
	// (WatchVerify), else by reading v3 back in key ranges.
	FastVerify  bool   `json:"fast_verify"`
	WatchVerify bool   `json:"watch_verify"`
	V2Index     uint64 `json:"v2_index"` // v2's quorum index just before the copy
	// VerifiedIndex is the v2 index as of which verification found v3
	// holding every v2 document: writes to v2 after it are not the
	// move's (the ledger records it as counts.v2_index).
	VerifiedIndex uint64  `json:"verified_v2_index"`
	Checksum      string  `json:"checksum"`
	Seconds       float64 `json:"seconds"`
	// PhaseSeconds splits Seconds: copy (the pass, from its first v2
	// read to its last write) and verify; read is the part of the copy
	// until v2 was read whole (the writes ran meanwhile), which tells
	// whether reading v2 or writing v3 bounds the copy.
	PhaseSeconds map[string]float64 `json:"phase_seconds,omitempty"`
	DocsPerSec   float64            `json:"docs_per_s"`
	DryRun       bool               `json:"dry_run,omitempty"`
}

const listMax = 100

// Move copies every document under the prefix from the v2 store to the v3
// store: same key string, same value bytes, a v2 TTL becoming a lease with
// the remaining TTL. It reads v2 once, by whole subtrees once it has
// sampled a family's size, and writes as it reads, through a batch.Writer;
// then it verifies: when v2's index has not moved since the copy began,
// by what a watch of v3 saw the copy create (or by v3 key ranges when the
// watch cannot tell), else by walking v2 again. Memory stays bounded whatever
// the store holds, plus 8 bytes per document (16 when verification walks
// v2 again) and one digest per TTL document.
//
// Every put is conditional on the key being absent; a v3 key that already
// holds the same bytes is left as is, so an interrupted or failed move
// re-runs to the same result. Under the prefix Move writes documents
// only: before its first write it opens a run in its state key
// (MoveOptions.StateKey, outside the prefix), and a key created after that
// write was created by the move, which is how RevertMove deletes exactly
// those. An older rokup's markers under the prefix are converted into the
// state first.
//
// A document too large for one transaction fails the move with
// ErrTooLarge, naming it, when the copy reaches it: what was copied before
// stays, unrecorded, for a re-run or a revert. The verification fails
// with ErrVerify unless v3 holds every v2 document's bytes as v2 stands
// after the copy; a document written in v2 during the move is named. A
// document deleted from v2 before the copy read it is in neither store:
// the copy is consistent. A TTL document that expires in v2 during the
// move is not a change: its lease expires with it in v3. v2 is only read.
//
// Cancelling ctx stops after the transactions in flight; Move then returns
// the context's error.
func Move(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, opts MoveOptions) (MoveReport, error) {
	m := newMover(cli, v2, opts)
	return m.run(ctx, false)
}

// CountMove is Move's dry run: it reads v2 and reports what Move would
// copy, writing nothing.
func CountMove(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, opts MoveOptions) (MoveReport, error) {
	m := newMover(cli, v2, opts)
	return m.run(ctx, true)
}

type ttlDoc struct {
	h    [32]byte
	exp  time.Time
	seen bool
}

// mover is one run of Move. Its fields are grouped by the phase that
// fills them; a later phase reads what an earlier one left.
type mover struct {
	cli   *clientv3.Client
	kapi  clientv2.KeysAPI
	opts  MoveOptions
	rep   MoveReport
	state *stateStore // the move's state key (state.go)
	start time.Time

	// The read (move_read.go): what the copy read of v2.
	w       *walker
	read    digest   // every document read, TTL ones included
	keys    []uint64 // keyHash of every document read, for walkVerify
	ttl     map[string]*ttlDoc
	ledger  []*clientv2.Node // v2's hidden ledger documents (a few)
	sample  []string         // keys sampled evenly, to split v3 reads
	largest largest          // the largest documents' sizes, for the read-back's pages

	// The watch of v3 under the prefix during the copy (move_watch.go).
	watch *v3Watch

	// The leases (move_leases.go): one per expiry window.
	leases     map[int64]*grant // by window end; only the copy's goroutine uses it
	waiting    []leasedDoc      // TTL documents whose lease is being granted
	granted    atomic.Int64
	grantsDone sync.WaitGroup
	grantSem   chan struct{} // grants in flight, 64 at most

	// The copy and its conflicts (move_copy.go).
	queued      int64
	identical   atomic.Int64
	overwritten atomic.Int64
	conflicts   atomic.Int64
	mu          sync.Mutex // guards rep.ConflictKeys
}

func newMover(cli *clientv3.Client, v2 clientv2.KeysAPI, opts MoveOptions) *mover {
	opts.Prefix = cleanPrefix(opts.Prefix)
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = batch.DefaultMaxOps
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = batch.DefaultMaxBytes
	}
	if opts.InFlight <= 0 {
		opts.InFlight = DefaultInFlight
	}
	if opts.Progress == nil {
		opts.Progress = func(Progress) {}
	}
	return &mover{
		cli: cli, kapi: v2, opts: opts, w: newWalker(v2, opts.ReadBudget),
		state:    newStateStore(cli, opts),
		leases:   map[int64]*grant{},
		grantSem: make(chan struct{}, 64),
		ttl:      map[string]*ttlDoc{},
	}
}

func (m *mover) progress(phase string, done, total, bytes int64) {
	m.opts.Progress(Progress{Phase: phase, Done: done, Total: total, Bytes: bytes})
}

func (m *mover) run(ctx context.Context, dry bool) (MoveReport, error) {
	m.start = time.Now()
	m.rep.DryRun = dry
	m.rep.PhaseSeconds = map[string]float64{}
	err := m.move(ctx, dry)
	m.finish()
	return m.rep, err
}

// move is run's body; m.rep holds what it found and did, whatever it
// returns.
func (m *mover) move(ctx context.Context, dry bool) error {
	// The v2 index I0, through the leader, just before the copy: every
	// read of the copy must be at or past it, and verification compares
	// v2's index after the copy with it.
	alive, i0, err := m.alive(ctx)
	if err != nil {
		return err
	}
	m.rep.Alive, m.rep.V2Index = alive, i0
	if len(alive) > 0 && !m.opts.Force && !dry {
		return fmt.Errorf("%w: liveness key %s exists; stop every Gateway (gunicorn and daemons) first, or pass --force", ErrGatewayAlive, strings.Join(alive, ", "))
	}
	if dry {
		return m.readV2(ctx, nil)
	}

	// 1. Read and copy, in one pass, in a run of the move recorded in the
	// state key first.
	if m.rep.LegacyMarkers, err = m.state.adoptMarkers(ctx); err != nil {
		return err
	}
	opened, err := m.state.openRun(ctx)
	if err != nil {
		return err
	}
	m.watch = m.startWatch(ctx, opened)
	defer m.watch.stop()
	gctx, stopGrants := context.WithCancel(ctx)
	defer m.grantsDone.Wait() // no grant outlives the move
	defer stopGrants()
	if err := m.copy(ctx, gctx); err != nil {
		m.countV3(ctx)
		return err
	}
	if m.rep.Conflicts > 0 {
		return fmt.Errorf("%w: %d v3 keys already hold other bytes than in v2 (first: %s); nothing was recorded; re-run with --overwrite to replace them", ErrConflict, m.rep.Conflicts, strings.Join(first(m.rep.ConflictKeys, 3), ", "))
	}

	// 2. Verify: every v2 document in v3, then nothing else there.
	t0 := time.Now()
	err = m.verify(ctx)
	if err == nil {
		err = m.noExtra(ctx)
	}
	if err == nil {
		err = m.state.closeRun(ctx)
	}
	m.rep.PhaseSeconds["verify"] = time.Since(t0).Seconds()
	return err
}

// countV3 reads how many keys the prefix holds in v3, for the report of a
// copy that stopped early; it runs after ctx was cancelled too.
func (m *mover) countV3(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	p := strings.TrimSuffix(m.opts.Prefix, "/") + "/"
	if resp, err := m.cli.Get(cctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly()); err == nil {
		m.rep.V3KeysNow = resp.Count
	}
}

func (m *mover) finish() {
	m.rep.V2Reads = m.w.stats
	el := time.Since(m.start).Seconds()
	m.rep.Seconds = el
	if el > 0 {
		m.rep.DocsPerSec = float64(m.rep.Docs) / el
	}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
