package gateway

import (
	"context"
	"encoding/json"
	"errors"
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
	// Force moves even while a Gateway liveness key exists.
	Force bool
	// Overwrite replaces v3 keys that hold other bytes instead of
	// reporting them as conflicts. Reverting the move does not restore
	// what was overwritten.
	Overwrite bool
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
	Txns         int64    `json:"txns"`
	V2Index      uint64   `json:"v2_index"` // v2 index when the move began
	Checksum     string   `json:"checksum"`
	Seconds      float64  `json:"seconds"`
	DocsPerSec   float64  `json:"docs_per_s"`
	DryRun       bool     `json:"dry_run,omitempty"`
}

const listMax = 100

// Move copies every document under the prefix from the v2 store to the v3
// store: same key string, same value bytes, a v2 TTL becoming a lease with
// the remaining TTL. It walks v2 one directory at a time and writes through
// a batch.Writer, so memory stays bounded by the largest directory (plus
// one digest per TTL document, see below).
//
// Every put is conditional on the key being absent; a v3 key that already
// holds the same bytes is left as is, so an interrupted move re-runs to the
// same result. Each transaction also records the keys it created under
// <prefix>/_rokup/moved/, which is how RevertMove deletes exactly those.
//
// After the copy, Move re-walks v2 and reads v3 back: the count and the
// checksum of (key, value) pairs must equal those of v2 at the start, and
// no v2 document may have been modified since; otherwise it fails with
// ErrVerify. A TTL document that expires in v2 during the move is not a
// change: its lease expires with it in v3. v2 is only read.
//
// Cancelling ctx stops after the transactions in flight; Move then returns
// the context's error.
func Move(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, opts MoveOptions) (MoveReport, error) {
	m := newMover(cli, v2, opts)
	return m.run(ctx, false)
}

// CountMove is Move's dry run: it walks v2 and reports what Move would
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
	cli  *clientv3.Client
	kapi clientv2.KeysAPI
	opts MoveOptions
	rep  MoveReport

	markers string // this run's marker prefix
	seq     int64
	leases  map[int64]clientv3.LeaseID
	ttl     map[string]*ttlDoc
	chunkN  int // documents per item
	start   time.Time

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
	// An item is n compares and n puts plus one marker put; etcd bounds
	// compares (with the guard's) and operations separately.
	n := min(opts.MaxTxnOps-1, opts.MaxTxnOps-len(opts.Guard.Cmps()))
	if n < 1 {
		n = 1
	}
	return &mover{
		cli: cli, kapi: v2, opts: opts,
		markers: fmt.Sprintf("%s/%x-", movedPrefix(opts.Prefix), time.Now().UnixNano()),
		leases:  map[int64]clientv3.LeaseID{},
		ttl:     map[string]*ttlDoc{},
		chunkN:  n,
	}
}

// movedPrefix holds the move's bookkeeping: which keys each transaction
// created. It is hidden (leading _) as the Gateway's own hidden paths are.
func movedPrefix(prefix string) string { return prefix + "/_rokup/moved/" }

func (m *mover) progress(phase string, done, total int64) {
	m.opts.Progress(Progress{Phase: phase, Done: done, Total: total})
}

func (m *mover) run(ctx context.Context, dry bool) (MoveReport, error) {
	m.start = time.Now()
	m.rep.DryRun = dry
	alive, err := m.alive(ctx)
	if err != nil {
		return m.rep, err
	}
	m.rep.Alive = alive
	if len(alive) > 0 && !m.opts.Force && !dry {
		return m.rep, fmt.Errorf("%w: liveness key %s exists; stop every Gateway (gunicorn and daemons) first, or pass --force", ErrGatewayAlive, strings.Join(alive, ", "))
	}

	// 1. Count: the v2 store as it is at the start.
	stable, err := m.count(ctx)
	if err != nil {
		return m.rep, err
	}
	total := stable.n + int64(len(m.ttl))
	m.rep.Docs, m.rep.Bytes, m.rep.TTLDocs = total, stable.bytes, int64(len(m.ttl))
	if dry {
		m.finish()
		return m.rep, nil
	}

	// 2. Copy.
	if err := m.copy(ctx, total); err != nil {
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
	err = m.verify(ctx, stable, total)
	m.finish()
	return m.rep, err
}

func (m *mover) finish() {
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
// by name.
func (m *mover) alive(ctx context.Context) ([]string, error) {
	dir := m.opts.Prefix + "/_alive"
	resp, err := m.kapi.Get(ctx, dir, &clientv2.GetOptions{Sort: true, Quorum: true})
	if clientv2.IsKeyNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: read v2 %s: %w", dir, v2Error(err))
	}
	var keys []string
	for _, n := range resp.Node.Nodes {
		keys = append(keys, n.Key)
	}
	if !resp.Node.Dir {
		keys = append(keys, resp.Node.Key)
	}
	return keys, nil
}

// count walks v2 once: the start index, the digest of documents without a
// TTL, one digest per TTL document (they may expire during the move), the
// empty directories, and a size check so that an oversize document fails
// the move before anything is written.
func (m *mover) count(ctx context.Context) (digest, error) {
	var stable digest
	idx, err := walk(ctx, m.kapi, m.opts.Prefix, func(_ string, leaves []*clientv2.Node) error {
		for _, n := range leaves {
			if need := docBytes(n.Key, n.Value) + m.markerBytes(); need > m.opts.MaxRequestBytes {
				return fmt.Errorf("%w: %s holds %d bytes, and one transaction may carry %d (--max-request-bytes; etcd's server limit is 1.5 MiB by default)", ErrTooLarge, n.Key, len(n.Value), m.opts.MaxRequestBytes)
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

// docBytes is what one document adds to an item as the writer accounts
// it: key and value, the op's framing, and its entry in the marker (JSON
// may escape a key's characters up to six bytes each).
func docBytes(key, value string) int { return len(key) + len(value) + 16 + 6*len(key) + 24 }

// markerBytes is the fixed part of an item: the marker's key, op and JSON.
func (m *mover) markerBytes() int { return len(m.markers) + 8 + 16 + 32 }

// marker is the bookkeeping value: the keys one transaction created and
// their leases (kept so a failed transaction can be rebuilt).
type marker struct {
	Keys   []string `json:"keys"`
	Leases []int64  `json:"leases"`
}

type chunk struct {
	keys   []string
	vals   []string
	leases []int64
	bytes  int
}

func (m *mover) copy(ctx context.Context, total int64) error {
	w := batch.New(ctx, m.cli, batch.Config{
		MaxOps:     m.opts.MaxTxnOps,
		MaxBytes:   m.opts.MaxRequestBytes,
		InFlight:   m.opts.InFlight,
		Guard:      m.opts.Guard,
		OnConflict: m.resolve,
	})
	var c chunk
	flush := func() error {
		if len(c.keys) == 0 {
			return nil
		}
		it, err := m.item(c.keys, c.vals, c.leases)
		if err != nil {
			return err
		}
		if err := w.Add(it); err != nil {
			return err
		}
		m.queued += int64(len(c.keys))
		c = chunk{}
		m.progress("copy", m.queued, total)
		return nil
	}
	_, err := walk(ctx, m.kapi, m.opts.Prefix, func(_ string, leaves []*clientv2.Node) error {
		for _, n := range leaves {
			if n.ModifiedIndex > m.rep.V2Index {
				return m.changed(n)
			}
			var lease int64
			if n.Expiration != nil {
				id, err := m.lease(ctx, *n.Expiration)
				if err != nil {
					return err
				}
				lease = int64(id)
			}
			size := docBytes(n.Key, n.Value)
			if len(c.keys) >= m.chunkN || (len(c.keys) > 0 && c.bytes+size+m.markerBytes() > m.opts.MaxRequestBytes) {
				if err := flush(); err != nil {
					return err
				}
			}
			c.keys = append(c.keys, n.Key)
			c.vals = append(c.vals, n.Value)
			c.leases = append(c.leases, lease)
			c.bytes += size
		}
		// A directory's documents go together; the next one starts afresh
		// only when this chunk is full, so small directories share items.
		return nil
	}, func(string) {})
	if err == nil {
		err = flush()
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
	return nil
}

func (m *mover) changed(n *clientv2.Node) error {
	return fmt.Errorf("%w: v2 changed during the move: %s was modified at v2 index %d, after the move began at index %d; nothing was recorded; stop every writer of the Gateway store and re-run", ErrVerify, n.Key, n.ModifiedIndex, m.rep.V2Index)
}

// lease returns the shared lease of documents whose expiry falls in the
// same window as exp, granting it on first use. Windows are 1% of the
// remaining TTL (at least a second, at most a minute) and a lease lasts to
// its window's end: a document may outlive its v2 expiry by that much,
// never less. One grant per distinct second would cost a round trip per
// document when expiries are spread, as they are in a real store.
func (m *mover) lease(ctx context.Context, exp time.Time) (clientv3.LeaseID, error) {
	end := leaseWindowEnd(exp, time.Now())
	if id, ok := m.leases[end]; ok {
		return id, nil
	}
	ttl := end - time.Now().Unix() + 1
	if ttl < 1 {
		ttl = 1
	}
	resp, err := m.cli.Grant(ctx, ttl)
	if err != nil {
		return 0, fmt.Errorf("gateway: grant a %ds lease: %w", ttl, err)
	}
	m.leases[end] = resp.ID
	m.rep.Leases++
	return resp.ID, nil
}

// leaseWindowEnd is the end (Unix seconds) of the lease window holding
// exp, as seen at now.
func leaseWindowEnd(exp, now time.Time) int64 {
	w := int64(exp.Sub(now) / time.Second / 100)
	w = min(max(w, 1), 60)
	sec := exp.Unix()
	return (sec + w - 1) / w * w
}

// item builds the batch item that creates keys, each only if absent, and
// records them in a marker written in the same transaction.
func (m *mover) item(keys, vals []string, leases []int64) (batch.Item, error) {
	m.seq++
	mk := fmt.Sprintf("%s%08d", m.markers, m.seq)
	return createItem(mk, keys, vals, leases, nil)
}

// createItem creates keys (absent ones; cmps given per key when non-nil
// replace the absence compares) with their marker.
func createItem(mk string, keys, vals []string, leases []int64, over map[string]int64) (batch.Item, error) {
	var it batch.Item
	var created marker
	for i, k := range keys {
		var opts []clientv3.OpOption
		if leases[i] != 0 {
			opts = append(opts, clientv3.WithLease(clientv3.LeaseID(leases[i])))
		}
		if rev, ok := over[k]; ok {
			it.Cmps = append(it.Cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		} else {
			it.Cmps = append(it.Cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			created.Keys = append(created.Keys, k)
			created.Leases = append(created.Leases, leases[i])
		}
		it.Ops = append(it.Ops, clientv3.OpPut(k, vals[i], opts...))
		it.Size += len(k) + len(vals[i])
	}
	if len(created.Keys) > 0 {
		b, err := json.Marshal(created)
		if err != nil {
			return it, err
		}
		it.Ops = append(it.Ops, clientv3.OpPut(mk, string(b)))
		it.Size += len(mk) + len(b)
	}
	return it, nil
}

// resolve handles a transaction whose compares failed: some keys already
// exist in v3. Each item is re-read; keys holding the same bytes are
// skipped, keys holding other bytes are conflicts (or overwritten), and
// the rest are created, again conditionally.
func (m *mover) resolve(ctx context.Context, items []batch.Item) error {
	for _, it := range items {
		if err := m.resolveItem(ctx, it); err != nil {
			return err
		}
	}
	return nil
}

func (m *mover) resolveItem(ctx context.Context, it batch.Item) error {
	last := it.Ops[len(it.Ops)-1]
	mk := string(last.KeyBytes())
	var mark marker
	if err := json.Unmarshal(last.ValueBytes(), &mark); err != nil || len(mark.Keys) != len(it.Ops)-1 {
		return fmt.Errorf("gateway: move: unreadable marker %s", mk)
	}
	leaseOf := map[string]int64{}
	for i, k := range mark.Keys {
		leaseOf[k] = mark.Leases[i]
	}
	for attempt := 0; attempt < 5; attempt++ {
		gets := make([]clientv3.Op, len(mark.Keys))
		for i, k := range mark.Keys {
			gets[i] = clientv3.OpGet(k)
		}
		rr, err := m.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return fmt.Errorf("gateway: move: read back %s: %w", mark.Keys[0], err)
		}
		var keys, vals []string
		var leases []int64
		over := map[string]int64{}
		var same, conflict, overwrite int64
		var conflictKeys []string
		for i, k := range mark.Keys {
			val := string(it.Ops[i].ValueBytes())
			kvs := rr.Responses[i].GetResponseRange().Kvs
			switch {
			case len(kvs) == 0:
			case string(kvs[0].Value) == val:
				same++
				continue
			case !m.opts.Overwrite:
				conflict++
				conflictKeys = append(conflictKeys, k)
				continue
			default:
				overwrite++
				over[k] = kvs[0].ModRevision
			}
			keys, vals, leases = append(keys, k), append(vals, val), append(leases, leaseOf[k])
		}
		ok := true
		if len(keys) > 0 {
			ni, err := createItem(mk, keys, vals, leases, over)
			if err != nil {
				return err
			}
			resp, err := m.cli.Txn(ctx).If(append(m.opts.Guard.Cmps(), ni.Cmps...)...).Then(ni.Ops...).Commit()
			if err != nil {
				return fmt.Errorf("gateway: move: write %s: %w", keys[0], err)
			}
			if !resp.Succeeded {
				if err := m.opts.Guard.Check(ctx, m.cli); err != nil {
					return err
				}
				ok = false
			}
		}
		if ok {
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
	}
	return fmt.Errorf("gateway: move: v3 keys near %s keep changing while the move runs; stop other writers and re-run", mark.Keys[0])
}

// verify re-walks v2 and reads v3 back.
func (m *mover) verify(ctx context.Context, start digest, total int64) error {
	var now digest
	var changed error
	rb := newReadBack(ctx, m, total)
	_, err := walk(ctx, m.kapi, m.opts.Prefix, func(_ string, leaves []*clientv2.Node) error {
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
	if changed != nil {
		return changed
	}
	v3sum, mismatches, firstMismatch := rb.v3sum, rb.mismatches, rb.firstMismatch
	for k, d := range m.ttl {
		if d.seen {
			now.addHash(d.h, 0)
			continue
		}
		if time.Until(d.exp) > time.Second {
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
	return nil
}
