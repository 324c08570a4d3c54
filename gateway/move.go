package gateway

import (
	"cmp"
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
	InFlight        int    // transactions in flight, default batch.DefaultInFlight
	// SpoolDir holds the temporary file the count keeps the documents in
	// for the copy (default the system's temp dir); SpoolBytes bounds it
	// (default DefaultSpoolBytes; negative: no spool, the copy reads v2
	// again). A spool that cannot be written is given up, not an error.
	SpoolDir   string
	SpoolBytes int64
	// ReadBudget bounds one whole-subtree read of v2, in bytes of answer
	// (default 4 MiB); negative reads v2 a directory at a time.
	ReadBudget int64
	// Force moves even while a Gateway liveness key exists.
	Force bool
	// Overwrite replaces v3 keys that hold other bytes instead of
	// reporting them as conflicts. Reverting the move does not restore
	// what was overwritten.
	Overwrite bool
	// StateKey holds what the move needs to resume and revert (the v3
	// revisions it wrote in), outside the Gateway's prefix; default
	// StateKey(Prefix).
	StateKey string
	// Guard goes in the If of every write.
	Guard fencing.Guard
	// Progress, if set, receives the count, copy and verify phases.
	Progress func(Progress)
}

// MoveReport is what a move found and did.
type MoveReport struct {
	Docs        int64 `json:"docs"`      // documents in v2 (copied or already in v3)
	Bytes       int64 `json:"bytes"`     // their value bytes
	Created     int64 `json:"created"`   // v3 keys the move created
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
	Alive        []string `json:"alive,omitempty"` // Gateway liveness keys seen
	// LegacyMarkers counts the bookkeeping keys an older rokup left under
	// the prefix, converted into the state key and deleted.
	LegacyMarkers int64     `json:"legacy_markers,omitempty"`
	Txns          int64     `json:"txns"`
	V2Reads       WalkStats `json:"v2_reads"`
	// Spooled is true when the copy read the count's spool, not v2.
	Spooled bool `json:"spooled"`
	// FastVerify is true when v2 had not moved since the count, so v3
	// was read back in key ranges against the count's checksum instead
	// of walking v2 again.
	FastVerify bool   `json:"fast_verify"`
	V2Index    uint64 `json:"v2_index"` // v2 index when the move began
	// VerifiedIndex is the v2 index as of which verification found v3
	// holding every v2 document: writes to v2 after it are not the
	// move's (the ledger records it as counts.v2_index).
	VerifiedIndex uint64  `json:"verified_v2_index"`
	Checksum      string  `json:"checksum"`
	Seconds       float64 `json:"seconds"`
	// PhaseSeconds splits Seconds: count, copy, verify.
	PhaseSeconds map[string]float64 `json:"phase_seconds,omitempty"`
	DocsPerSec   float64            `json:"docs_per_s"`
	DryRun       bool               `json:"dry_run,omitempty"`
}

const listMax = 100

// Move copies every document under the prefix from the v2 store to the v3
// store: same key string, same value bytes, a v2 TTL becoming a lease with
// the remaining TTL. It runs in the three phases the package doc tells:
// the count reads v2 (by whole subtrees once sampled, into a local spool),
// the copy writes through a batch.Writer, the verification reads v3 back
// (by key ranges when v2's index has not moved, else walking v2 again).
// Memory stays bounded whatever the store holds (plus one digest per TTL
// document).
//
// Every put is conditional on the key being absent; a v3 key that already
// holds the same bytes is left as is, so an interrupted move re-runs to the
// same result. Under the prefix Move writes documents only: before its
// first write it opens a run in its state key (MoveOptions.StateKey,
// outside the prefix), and a key created after that write was created by
// the move, which is how RevertMove deletes exactly those. An older
// rokup's markers under the prefix are converted into the state first.
//
// The verification fails with ErrVerify unless v3 holds every v2
// document's bytes and v2 did not change since the count. A TTL document
// that expires in v2 during the move is not a change: its lease expires
// with it in v3. v2 is only read.
//
// Cancelling ctx stops after the transactions in flight; Move then returns
// the context's error.
func Move(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, opts MoveOptions) (MoveReport, error) {
	m := newMover(cli, v2, opts)
	return m.run(ctx, false)
}

// CountMove is Move's dry run: it counts v2 and reports what Move would
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

	// The read (move_read.go): what the count saw of v2.
	w       *walker
	spool   *spool // the count's documents, for the copy (nil: none)
	ttl     map[string]*ttlDoc
	ledger  []*clientv2.Node // v2's hidden ledger documents (a few)
	sample  []string         // keys sampled evenly by the count, to split v3 reads
	counted int64
	maxDoc  int // the largest document's key and value bytes

	// The leases (move_leases.go): one per expiry window.
	leases     map[int64]*grant // by window end; only the copy's goroutine uses it
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
		opts.InFlight = batch.DefaultInFlight
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

func (m *mover) progress(phase string, done, total int64) {
	m.opts.Progress(Progress{Phase: phase, Done: done, Total: total})
}

func (m *mover) run(ctx context.Context, dry bool) (MoveReport, error) {
	m.start = time.Now()
	m.rep.DryRun = dry
	alive, q0, err := m.alive(ctx)
	if err != nil {
		return m.rep, err
	}
	m.rep.Alive = alive
	if len(alive) > 0 && !m.opts.Force && !dry {
		return m.rep, fmt.Errorf("%w: liveness key %s exists; stop every Gateway (gunicorn and daemons) first, or pass --force", ErrGatewayAlive, strings.Join(alive, ", "))
	}

	// 1. Count: the v2 store as it is at the start.
	m.rep.PhaseSeconds = map[string]float64{}
	phase := func(name string, t time.Time) { m.rep.PhaseSeconds[name] = time.Since(t).Seconds() }
	t0 := time.Now()
	if !dry && m.opts.SpoolBytes >= 0 {
		if m.spool, err = newSpool(m.opts.SpoolDir, cmp.Or(m.opts.SpoolBytes, DefaultSpoolBytes)); err != nil {
			m.spool = nil // the copy walks v2 again
		}
		defer m.dropSpool()
	}
	stable, err := m.count(ctx)
	phase("count", t0)
	if err == nil {
		err = m.caughtUp("count", m.rep.V2Index, q0)
	}
	if err != nil {
		return m.rep, err
	}
	total := stable.n + int64(len(m.ttl))
	m.rep.Docs, m.rep.Bytes, m.rep.TTLDocs = total, stable.bytes, int64(len(m.ttl))
	if dry {
		m.finish()
		return m.rep, nil
	}

	// 2. Copy, in a run of the move recorded in the state key first.
	t0 = time.Now()
	if m.rep.LegacyMarkers, err = m.state.adoptMarkers(ctx); err != nil {
		return m.rep, err
	}
	if err := m.state.openRun(ctx); err != nil {
		return m.rep, err
	}
	gctx, stopGrants := context.WithCancel(ctx)
	defer m.grantsDone.Wait() // no grant outlives the move
	defer stopGrants()
	m.grantLeases(gctx)
	err = m.copy(ctx, total)
	m.rep.Leases = m.granted.Load()
	phase("copy", t0)
	if err != nil {
		m.finish()
		return m.rep, err
	}
	m.rep.Identical = m.identical.Load()
	m.rep.Overwritten = m.overwritten.Load()
	m.rep.Conflicts = m.conflicts.Load()
	m.rep.Created = m.queued - m.rep.Identical - m.rep.Overwritten - m.rep.Conflicts
	if m.rep.Conflicts > 0 {
		m.finish()
		return m.rep, fmt.Errorf("%w: %d v3 keys already hold other bytes than in v2 (first: %s); nothing was recorded; re-run with --overwrite to replace them", ErrConflict, m.rep.Conflicts, strings.Join(first(m.rep.ConflictKeys, 3), ", "))
	}

	// 3. Verify.
	t0 = time.Now()
	err = m.verify(ctx, stable, total)
	if err == nil {
		err = m.state.closeRun(ctx)
	}
	phase("verify", t0)
	m.finish()
	return m.rep, err
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
