package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

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

type mover struct {
	cli   *clientv3.Client
	kapi  clientv2.KeysAPI
	w     *walker
	opts  MoveOptions
	rep   MoveReport
	state *stateStore

	leases     map[int64]*grant // by window end; only the copy's goroutine uses it
	granted    atomic.Int64
	grantsDone sync.WaitGroup
	grantSem   chan struct{} // grants in flight, 64 at most
	ttl        map[string]*ttlDoc
	ledger     []*clientv2.Node // v2's hidden ledger documents (a few)
	spool      *spool           // the count's documents, for the copy (nil: none)
	sample     []string         // keys sampled evenly by the count, to split v3 reads
	counted    int64
	maxDoc     int // the largest document's key and value bytes
	start      time.Time

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

// alive lists the Gateway liveness keys; v2 hides _alive, so it is read
// by name. The read goes through the leader, so its index is the
// cluster's as the move starts: the count's reads must not be behind it.
func (m *mover) alive(ctx context.Context) ([]string, uint64, error) {
	dir := m.opts.Prefix + "/_alive"
	resp, err := m.kapi.Get(ctx, dir, &clientv2.GetOptions{Sort: true, Quorum: true})
	if clientv2.IsKeyNotFound(err) {
		return nil, errIndex(err), nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("gateway: read v2 %s: %w", dir, v2Error(err))
	}
	var keys []string
	for _, n := range resp.Node.Nodes {
		keys = append(keys, n.Key)
	}
	if !resp.Node.Dir {
		keys = append(keys, resp.Node.Key)
	}
	return keys, resp.Index, nil
}

// count walks v2 once: the start index, the digest of documents without a
// TTL, one digest per TTL document (they may expire during the move), the
// empty directories, and a size check so that an oversize document fails
// the move before anything is written.
func (m *mover) count(ctx context.Context) (digest, error) {
	var stable digest
	ledger := ledgerDir(m.opts.Prefix)
	idx, err := m.w.walk(ctx, m.opts.Prefix, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			if need := docBytes(n.Key, n.Value); need > m.opts.MaxRequestBytes {
				return fmt.Errorf("%w: %s holds %d bytes, and one transaction may carry %d (--max-request-bytes; etcd's server limit is 1.5 MiB by default)", ErrTooLarge, n.Key, len(n.Value), m.opts.MaxRequestBytes)
			}
			m.maxDoc = max(m.maxDoc, len(n.Key)+len(n.Value))
			m.sampleKey(n.Key)
			if m.spool != nil {
				if err := m.spool.add(n.Key, n.Value, n.Expiration); err != nil {
					m.dropSpool()
				}
			}
			if strings.HasPrefix(n.Key, ledger) {
				m.ledger = append(m.ledger, n)
			}
			if n.Expiration != nil {
				m.ttl[n.Key] = &ttlDoc{h: pairHash(n.Key, n.Value), exp: *n.Expiration}
				stable.bytes += int64(len(n.Value))
			} else {
				stable.add(n.Key, n.Value)
			}
		}
		m.progress("count", stable.n+int64(len(m.ttl)), 0)
		return nil
	}, func(dir string) {
		m.rep.EmptyDirs++
		if len(m.rep.EmptyDirList) < listMax {
			m.rep.EmptyDirList = append(m.rep.EmptyDirList, dir)
		}
	})
	m.rep.V2Index = idx
	return stable, err
}

// docBytes is what one document costs a transaction as the writer
// accounts it: key and value, and the framing of its compare and put.
func docBytes(key, value string) int { return len(key) + len(value) + 2*16 }

// copy writes every document, each in an item of its own (a create-only
// compare and a put) that the writer packs into transactions. Nothing but
// documents is written under the prefix: the state key, opened before,
// tells the revert which keys these puts created.
func (m *mover) copy(ctx context.Context, total int64) error {
	w := batch.New(ctx, m.cli, batch.Config{
		MaxOps:     m.opts.MaxTxnOps,
		MaxBytes:   m.opts.MaxRequestBytes,
		InFlight:   m.opts.InFlight,
		Guard:      m.opts.Guard,
		OnConflict: m.resolve,
	})
	put := func(key, value string, exp *time.Time) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if exp != nil && time.Until(*exp) < expiryMargin {
			// Expiring in v2 now: its lease could be gone before the
			// put lands. Verification counts it as expired.
			return nil
		}
		var lease clientv3.LeaseID
		if exp != nil {
			var err error
			if lease, err = m.lease(ctx, *exp); err != nil {
				return err
			}
		}
		if err := w.Add(createItem(key, value, lease)); err != nil {
			return err
		}
		m.queued++
		if m.queued%128 == 0 {
			m.progress("copy", m.queued, total)
		}
		return nil
	}
	var err error
	if m.spool != nil {
		m.rep.Spooled = true
		err = m.spool.each(put)
	} else {
		_, err = m.w.walk(ctx, m.opts.Prefix, func(leaves []*clientv2.Node) error {
			for _, n := range leaves {
				if n.ModifiedIndex > m.rep.V2Index {
					return m.changed(n)
				}
				if err := put(n.Key, n.Value, n.Expiration); err != nil {
					return err
				}
			}
			return nil
		}, func(string) {})
	}
	cerr := w.Close()
	m.rep.Txns = w.Stats().Txns
	if err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return fmt.Errorf("gateway: move: %w", err)
	}
	m.progress("copy", m.queued, total)
	return nil
}

func (m *mover) changed(n *clientv2.Node) error {
	return fmt.Errorf("%w: v2 changed during the move: %s was modified at v2 index %d, after the move began at index %d; nothing was recorded; stop every writer of the Gateway store and re-run", ErrVerify, n.Key, n.ModifiedIndex, m.rep.V2Index)
}

// lease returns the shared lease of documents whose expiry falls in the
// same window as exp. Windows are 1% of the remaining TTL (at least a
// second, at most a minute) and a lease lasts to its window's end: a
// document may outlive its v2 expiry by that much, never less. One grant
// per distinct second would cost a round trip per document when expiries
// are spread, as they are in a real store.
//
// Windows are reckoned from the move's start, so the count tells every
// window the copy will need, and grantLeases asks for them all at once
// (one at a time, a round trip and a commit each, they cost more than the
// copy of a small store); lease waits only for the one it needs. A move
// that fails leaves the leases it did not use to expire on their own.
func (m *mover) lease(ctx context.Context, exp time.Time) (clientv3.LeaseID, error) {
	end := leaseWindowEnd(exp, m.start)
	g, ok := m.leases[end]
	if !ok { // a window the count did not see: grant it now
		g = m.startGrant(ctx, end)
	}
	select {
	case <-g.done:
		return g.id, g.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// grant is one window's lease, granted in the background.
type grant struct {
	done chan struct{}
	id   clientv3.LeaseID
	err  error
}

// grantLeases starts the grants of every window of the count's TTL
// documents, up to 64 at a time (a grant is a few bytes, and etcd commits
// concurrent ones together).
func (m *mover) grantLeases(ctx context.Context) {
	for _, d := range m.ttl {
		if end := leaseWindowEnd(d.exp, m.start); m.leases[end] == nil {
			m.startGrant(ctx, end)
		}
	}
}

// startGrant records the grant of window end's lease and starts it in the
// background; grantsDone waits for it.
func (m *mover) startGrant(ctx context.Context, end int64) *grant {
	g := &grant{done: make(chan struct{})}
	m.leases[end] = g
	m.grantsDone.Add(1)
	go func() {
		defer m.grantsDone.Done()
		m.grantSem <- struct{}{}
		defer func() { <-m.grantSem }()
		m.grant(ctx, end, g)
	}()
	return g
}

func (m *mover) grant(ctx context.Context, end int64, g *grant) {
	defer close(g.done)
	ttl := max(end-time.Now().Unix()+1, 1)
	resp, err := m.cli.Grant(ctx, ttl)
	if err != nil {
		g.err = fmt.Errorf("gateway: grant a %ds lease: %w", ttl, err)
		return
	}
	g.id = resp.ID
	m.granted.Add(1)
}

// sampleKey keeps a uniform sample of the keys the count sees
// (reservoir sampling), whose sorted keys split v3 into ranges of about
// the same size.
func (m *mover) sampleKey(k string) {
	const size = 64
	m.counted++
	if len(m.sample) < size {
		m.sample = append(m.sample, k)
	} else if i := rand.Int64N(m.counted); i < size {
		m.sample[i] = k
	}
}

// dropSpool gives the spool up: the copy will walk v2.
func (m *mover) dropSpool() {
	if m.spool != nil {
		m.spool.close()
		m.spool = nil
	}
}

// leaseWindowEnd is the end (Unix seconds) of the lease window holding
// exp, as seen at now.
func leaseWindowEnd(exp, now time.Time) int64 {
	w := int64(exp.Sub(now) / time.Second / 100)
	w = min(max(w, 1), 60)
	sec := exp.Unix()
	return (sec + w - 1) / w * w
}

// createItem is the item that creates key with value (on lease, when not
// 0) only if key is absent from v3.
func createItem(k, value string, lease clientv3.LeaseID) batch.Item {
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	return batch.Item{
		Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
		Ops:  []clientv3.Op{clientv3.OpPut(k, value, opts...)},
		Size: len(k) + len(value),
	}
}

// resolve handles a transaction whose compares failed: some keys already
// exist in v3. Its keys are read back; keys holding the same bytes are
// skipped, keys holding other bytes are conflicts (or overwritten, the
// put then conditional on the mod revision read), and the rest are
// created, again only if absent, by the items' own puts (leases included).
func (m *mover) resolve(ctx context.Context, items []batch.Item) error {
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = string(it.Ops[0].KeyBytes())
	}
	for attempt := 0; attempt < 5; attempt++ {
		gets := make([]clientv3.Op, len(keys))
		for i, k := range keys {
			gets[i] = clientv3.OpGet(k)
		}
		rr, err := m.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return fmt.Errorf("gateway: move: read back %s: %w", keys[0], err)
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		var same, conflict, overwrite int64
		var conflictKeys []string
		for i, k := range keys {
			put := items[i].Ops[0]
			kvs := rr.Responses[i].GetResponseRange().Kvs
			switch {
			case len(kvs) == 0:
				cmps = append(cmps, items[i].Cmps...)
			case string(kvs[0].Value) == string(put.ValueBytes()):
				same++
				continue
			case !m.opts.Overwrite:
				conflict++
				conflictKeys = append(conflictKeys, k)
				continue
			default:
				overwrite++
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision))
			}
			ops = append(ops, put)
		}
		if len(ops) > 0 {
			resp, err := m.cli.Txn(ctx).If(append(m.opts.Guard.Cmps(), cmps...)...).Then(ops...).Commit()
			if err != nil {
				return fmt.Errorf("gateway: move: write %s: %w", string(ops[0].KeyBytes()), err)
			}
			if !resp.Succeeded {
				if err := m.opts.Guard.Check(ctx, m.cli); err != nil {
					return err
				}
				continue // changed since read: read again
			}
		}
		m.identical.Add(same)
		m.overwritten.Add(overwrite)
		m.conflicts.Add(conflict)
		if len(conflictKeys) > 0 {
			m.mu.Lock()
			for _, k := range conflictKeys {
				if len(m.rep.ConflictKeys) < listMax {
					m.rep.ConflictKeys = append(m.rep.ConflictKeys, k)
				}
			}
			m.mu.Unlock()
		}
		return nil
	}
	return fmt.Errorf("gateway: move: v3 keys near %s keep changing while the move runs; stop other writers and re-run", keys[0])
}

// verify checks v3 against v2: quickly when v2 has not moved since the
// count (fastVerify), else by walking v2 again (walkVerify), which also
// names what differs.
//
// Both go by the cluster's v2 index q, read once here through the leader.
func (m *mover) verify(ctx context.Context, start digest, total int64) error {
	q, err := m.quorumIndex(ctx)
	if err != nil {
		return err
	}
	ok, err := m.fastVerify(ctx, q, start, total)
	if err != nil || ok {
		return err
	}
	return m.walkVerify(ctx, q, start, total)
}

// fastVerify reads v3 back in key ranges, when v2's index shows that
// nothing in v2 was written, deleted or expired since the count began: v2
// is then exactly what the count read, and the count's checksum stands
// for it. The v3 keys under the prefix (but the ledger, whose v2 documents
// are compared one by one) must hold exactly
// those pairs. It returns false, nil when it cannot tell: v2 moved, or v3
// differs (a v3-only key, say, which is no failure, or a changed one,
// which is), and walkVerify decides.
func (m *mover) fastVerify(ctx context.Context, index uint64, start digest, total int64) (bool, error) {
	if index == 0 || index != m.rep.V2Index {
		return false, nil // moved, or no index to go by
	}
	want := start
	for _, d := range m.ttl {
		want.addHash(d.h, 0)
	}
	var ledger digest
	for _, n := range m.ledger {
		ledger.add(n.Key, n.Value)
	}
	// One snapshot of v3 for the ledger documents and the ranges.
	first, err := m.cli.Get(ctx, m.opts.Prefix+"/", clientv3.WithLimit(1))
	if err != nil {
		return false, fmt.Errorf("gateway: verify: read v3 under %s: %w", m.opts.Prefix, err)
	}
	rev := first.Header.Revision
	if len(m.ledger) > 0 {
		gets := make([]clientv3.Op, len(m.ledger))
		for i, n := range m.ledger {
			gets[i] = clientv3.OpGet(n.Key, clientv3.WithRev(rev))
		}
		rr, err := m.cli.Txn(ctx).Then(gets...).Commit()
		if errors.Is(err, rpctypes.ErrCompacted) {
			return false, nil // compacted meanwhile: walk instead
		}
		if err != nil {
			return false, fmt.Errorf("gateway: verify: read v3 %s: %w", m.ledger[0].Key, err)
		}
		for i, n := range m.ledger {
			kvs := rr.Responses[i].GetResponseRange().Kvs
			if len(kvs) != 1 || string(kvs[0].Value) != n.Value {
				return false, nil
			}
		}
	}
	ledgerKeys := ledgerDir(m.opts.Prefix)
	got, err := m.scanV3(ctx, rev, func(kvs []*mvccpb.KeyValue, d *digest) (n int64) {
		for _, kv := range kvs {
			k := string(kv.Key)
			if strings.HasPrefix(k, ledgerKeys) {
				continue
			}
			d.add(k, string(kv.Value))
			n++
		}
		return n
	}, int64(len(m.ledger)), total)
	if errors.Is(err, rpctypes.ErrCompacted) {
		return false, nil // v3 compacted under the scan: walk instead
	}
	if err != nil {
		return false, fmt.Errorf("gateway: verify: read v3 under %s: %w", m.opts.Prefix, err)
	}
	got.merge(ledger)
	if got.n != want.n || got.sum != want.sum {
		return false, nil
	}
	m.rep.Checksum = got.String()
	m.rep.Docs = got.n
	m.rep.FastVerify = true
	m.rep.VerifiedIndex = index
	return true, nil
}

// quorumIndex is the cluster's v2 index now, read through the leader.
func (m *mover) quorumIndex(ctx context.Context) (uint64, error) {
	resp, err := m.kapi.Get(ctx, m.opts.Prefix, &clientv2.GetOptions{Quorum: true})
	switch {
	case clientv2.IsKeyNotFound(err): // no store at all: its index still tells
		return errIndex(err), nil
	case err != nil:
		return 0, fmt.Errorf("gateway: read v2 %s: %w", m.opts.Prefix, v2Error(err))
	}
	return resp.Index, nil
}

// caughtUp checks that a walk's reads, which any member may answer, came
// from members at or past the cluster's index q read just before it: a
// member still catching up (restarted, partitioned) would show a v2
// without writes the cluster already made, and the move would prove
// itself against that.
func (m *mover) caughtUp(what string, walked, q uint64) error {
	if walked == 0 || walked >= q {
		return nil
	}
	return fmt.Errorf("%w: the %s read v2 at index %d, behind the cluster's %d taken just before; nothing was recorded; re-run (the member will have caught up)", ErrLagging, what, walked, q)
}

// scanV3 reads v3 under the prefix, every range at revision rev,
// in ranges split at keys the count sampled, InFlight ranges at once, each
// in pages of at most scanPageBytes given the largest document the count
// saw (at least 16 documents). fn folds a page into its range's digest and says how many
// documents it counted, for the progress (which starts at done);
// scanV3 returns the sum of the digests.
func (m *mover) scanV3(ctx context.Context, rev int64, fn func([]*mvccpb.KeyValue, *digest) int64, done, total int64) (digest, error) {
	bounds := append([]string{m.opts.Prefix + "/"}, m.splits()...)
	bounds = append(bounds, m.opts.Prefix+"0")
	limit := int64(min(max(scanPageBytes/max(m.maxDoc, 1), 16), 2048))
	var (
		mu   sync.Mutex // guards sum and the progress callback
		sum  digest
		seen = done
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.opts.InFlight)
	for i := 0; i+1 < len(bounds); i++ {
		from, end := bounds[i], bounds[i+1]
		g.Go(func() error {
			var d digest
			for {
				resp, err := m.cli.Get(gctx, from, clientv3.WithRange(end), clientv3.WithLimit(limit), clientv3.WithRev(rev))
				if err != nil {
					return err
				}
				n := fn(resp.Kvs, &d)
				mu.Lock() // progress is reported from one goroutine at a time
				seen += n
				m.progress("verify", seen, total)
				mu.Unlock()
				if !resp.More || len(resp.Kvs) == 0 {
					break
				}
				from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
			}
			mu.Lock()
			sum.merge(d)
			mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	return sum, err
}

// expiryMargin: a TTL document this close to its expiry is expiring in
// v2 as the move runs: not copied, and not missed by verification.
const expiryMargin = 2 * time.Second

// scanPageBytes bounds a page of the verification's v3 reads: InFlight
// pages are read and decoded at once.
const scanPageBytes = 512 << 10

// splits returns the sorted, distinct keys the count sampled.
func (m *mover) splits() []string {
	s := slices.Clone(m.sample)
	slices.Sort(s)
	return slices.Compact(s)
}

// walkVerify re-walks v2 and reads v3 back key by key.
func (m *mover) walkVerify(ctx context.Context, q uint64, start digest, total int64) error {
	var now digest
	var changed error
	rb := newReadBack(ctx, m, total)
	index, err := m.w.walk(ctx, m.opts.Prefix, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			if changed == nil && n.ModifiedIndex > m.rep.V2Index {
				changed = m.changed(n)
			}
			d := readDoc{n: n, h: pairHash(n.Key, n.Value)}
			if n.Expiration != nil {
				d.ttl = m.ttl[n.Key]
				if d.ttl == nil || d.ttl.h != d.h {
					if changed == nil {
						changed = m.changed(n)
					}
					continue
				}
				d.ttl.seen = true
			} else {
				now.addHash(d.h, len(n.Value))
			}
			if err := rb.add(d); err != nil {
				return err
			}
		}
		return nil
	}, func(string) {})
	if err != nil {
		rb.cancel()
	}
	if cerr := rb.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := m.caughtUp("verification", index, q); err != nil {
		return err
	}
	if changed != nil {
		return changed
	}
	v3sum, mismatches, firstMismatch := rb.v3sum, rb.mismatches, rb.firstMismatch
	for k, d := range m.ttl {
		if d.seen {
			now.addHash(d.h, 0)
			continue
		}
		if time.Until(d.exp) > expiryMargin {
			return fmt.Errorf("%w: v2 changed during the move: %s was deleted; nothing was recorded; stop every writer of the Gateway store and re-run", ErrVerify, k)
		}
		m.rep.Expired++
	}
	// The TTL documents still present were folded into now above; fold
	// them into start the same way so the two sums compare like for like.
	for _, d := range m.ttl {
		if d.seen {
			start.addHash(d.h, 0)
		}
	}
	if now.sum != start.sum || now.n != start.n {
		return fmt.Errorf("%w: v2 changed during the move: %d documents now against %d at the start (checksum %s, was %s); nothing was recorded; stop every writer of the Gateway store and re-run", ErrVerify, now.n, start.n, now, start)
	}
	if mismatches > 0 {
		return fmt.Errorf("%w: %d v3 keys do not hold their v2 bytes (first: %s); nothing was recorded", ErrVerify, mismatches, strings.Join(firstMismatch, ", "))
	}
	if v3sum.sum != now.sum || v3sum.n != now.n {
		return fmt.Errorf("%w: v3 checksum %s differs from v2's %s; nothing was recorded", ErrVerify, v3sum, now)
	}
	m.rep.Checksum = v3sum.String()
	m.rep.Docs = v3sum.n
	m.rep.VerifiedIndex = index
	return nil
}
