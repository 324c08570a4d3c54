package libmap

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/fencing"
)

// checkPage is how many keys one read transaction checks: etcd's default
// --max-txn-ops.
const checkPage = 128

// DefaultStampInFlight is how many stamping transactions run at once. An
// epoch key is tiny, so a transaction of 128 puts is cheap to apply and
// most of its cost is the commit's disk sync; etcd shares one sync among
// the transactions it commits together, so more in flight means more
// objects per sync (measured: 8 → 41k/s, 16 → 63k/s, 32 → 102k/s on one
// fsyncing member, against 1.7k/s for one put at a time).
const DefaultStampInFlight = 32

// DefaultSortWindow is how many names a Stamper gathers and sorts before
// it cuts them into transactions. A scan finds objects in directory order,
// which for a folder of chocks is no order at all, and etcd pays for
// scattered keys. (Not in bbolt's pages, which etcd keys by revision, so
// that every write appends; its in-memory key index is where a profile
// shows the look-ups, not isolated further.) Measured on one fsyncing
// member holding the acceptance store (2026-12-02, 2 cores): 500 000
// epoch-sized puts at 128 × 32 in flight ran at 83–94k/s shuffled,
// 114k/s sorted 4 096 at a time, 140k/s sorted 32 768 at a time, and
// 142–150k/s wholly sorted; the epoch update's three nodes at once went
// from 5.5 to 4.5 s for their 500 000 objects. A window of 32 768 keys is
// about 3 MiB, whatever the scope's size.
const DefaultSortWindow = 32768

// StampConfig tunes a Stamper. The zero value is fine for unguarded work.
type StampConfig struct {
	// Guard goes into every write transaction (master-only stamping); a
	// deposed master's stamper stops with an error wrapping
	// fencing.ErrNotLeader.
	Guard fencing.Guard
	// InFlight is how many transactions run at once (reads and writes
	// each); default DefaultStampInFlight.
	InFlight int
	// MaxOps bounds the operations of a write transaction; default 128.
	MaxOps int
	// SortWindow is how many names are gathered and sorted before they
	// are read and written; default DefaultSortWindow, 1 for none.
	SortWindow int
	// OnProgress gets the number of objects done (stamped or found
	// already stamped) so far. Calls are serialised.
	OnProgress func(done int64)
}

// StampStats is what a Stamper did.
type StampStats struct {
	Epoch          uint64 `json:"epoch"`
	Stamped        int64  `json:"stamped"`         // keys written
	AlreadyStamped int64  `json:"already_stamped"` // keys that held the epoch already
}

// Stamper stamps many objects of one scope (and node, for nodelocal
// scopes) with the epoch current when it was created.
//
// Writes go through batch.Writer: transactions of at most 128 puts, several
// in flight, each of neighbouring keys: names are gathered a window at a
// time (StampConfig.SortWindow) and sorted before they are cut into pages.
// A re-run after an interruption should be cheap, so unless the scope
// holds no key yet, each page of 128 keys is first read in one
// read-only transaction (served without a raft write) and only the keys
// missing or holding another epoch are written: an already-stamped object
// costs a read, not a write.
//
// Add is for one goroutine; Close must be called.
type Stamper struct {
	c     *Cache
	scope Scope
	node  string
	epoch uint64
	value string
	keys  string // the prefix of the scope's (and node's) keys
	rev   int64  // the epoch key's mod revision at creation
	check bool   // read before writing
	cfg   StampConfig

	ctx    context.Context
	cancel context.CancelFunc
	pages  chan []string
	writes chan []string
	window []string // names added, not yet cut into pages
	rwg    sync.WaitGroup
	wdone  chan struct{}
	w      *batch.Writer

	mu     sync.Mutex
	err    error
	stats  StampStats
	closed bool
	progMu sync.Mutex
}

// NewStamper reads the current epoch (creating it if needed) and returns a
// stamper for scope; node qualifies the ids of nodelocal scopes and is
// ignored for content-addressed ones. Cancelling ctx stops the stamper after
// the transactions in flight; Close then returns ctx's error.
func (c *Cache) NewStamper(ctx context.Context, scope Scope, node string, cfg StampConfig) (*Stamper, error) {
	if !scope.Valid() {
		_, err := ParseScope(string(scope))
		return nil, err
	}
	if scope.Nodelocal() && node == "" {
		return nil, fmt.Errorf("libmap: stamp %s: a nodelocal scope needs the node's name", scope)
	}
	if !scope.Nodelocal() {
		node = ""
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultStampInFlight
	}
	if cfg.SortWindow <= 0 {
		cfg.SortWindow = DefaultSortWindow
	}
	e, rev, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	if err := cfg.Guard.Check(ctx, c.kv); err != nil {
		return nil, err
	}
	n, err := c.Count(ctx, scope, node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stamper{
		c: c, scope: scope, node: node, epoch: e, value: strconv.FormatUint(e, 10), keys: c.ScopePrefix(scope, node), rev: rev,
		check: n > 0, cfg: cfg, ctx: ctx, cancel: cancel,
		pages:  make(chan []string, cfg.InFlight),
		writes: make(chan []string, cfg.InFlight),
		wdone:  make(chan struct{}),
	}
	s.stats.Epoch = e
	s.w = batch.New(ctx, c.kv, batch.Config{
		MaxOps:   cfg.MaxOps,
		InFlight: cfg.InFlight,
		Guard:    cfg.Guard,
		// Every write also holds only while the epoch is the one written,
		// so a stamp never lands with an epoch a GC has moved past.
		Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(c.epochKey), "=", rev)},
		OnConflict: func(context.Context, []batch.Item) error {
			return fmt.Errorf("%w (stamping %s with epoch %d)", ErrEpochMoved, scope, e)
		},
		OnCommit: func(items, _ int) { s.progress(int64(items), 0) },
	})
	for i := 0; i < cfg.InFlight; i++ {
		s.rwg.Add(1)
		go s.reader()
	}
	go s.writer()
	return s, nil
}

// Epoch is the epoch this stamper writes.
func (s *Stamper) Epoch() uint64 { return s.epoch }

// Add queues the object name (a uuid, an index or a hash) for stamping.
// It returns the first error the stamper met, after which it is unusable.
func (s *Stamper) Add(name string) error {
	if err := s.Err(); err != nil {
		return err
	}
	if s.closed {
		return batch.ErrClosed
	}
	s.window = append(s.window, s.keys+name) // = c.Key(scope, scope.ID(node, name))
	if len(s.window) >= s.cfg.SortWindow {
		s.flush()
	}
	return s.Err()
}

// flush sorts the window and sends it on a page at a time, so that each
// transaction writes neighbouring keys (see DefaultSortWindow).
func (s *Stamper) flush() {
	slices.Sort(s.window)
	for i := 0; i < len(s.window) && s.Err() == nil; i += checkPage {
		s.send(s.window[i:min(i+checkPage, len(s.window))])
	}
	// The pages sent share the window's array: the next window is a new one.
	s.window = make([]string, 0, min(s.cfg.SortWindow, 1024))
}

// Close stamps what is queued, waits for every transaction and returns
// what was done. It fails with ErrEpochMoved if the current epoch advanced
// meanwhile (a GC started despite the fence): every write compares the
// epoch key's mod revision, and Close checks it once more for the objects
// found already stamped. Stamping again fixes it.
func (s *Stamper) Close() (StampStats, error) {
	if !s.closed {
		s.closed = true
		if len(s.window) > 0 {
			s.flush()
		}
		close(s.pages)
		s.rwg.Wait()
		close(s.writes)
		<-s.wdone
		if err := s.w.Close(); err != nil {
			s.fail(err)
		}
		if s.Err() == nil {
			if _, rev, err := s.c.current(s.ctx); err != nil {
				s.fail(err)
			} else if rev != s.rev {
				s.fail(fmt.Errorf("%w (stamped %s with epoch %d)", ErrEpochMoved, s.scope, s.epoch))
			}
		}
		s.cancel()
	}
	return s.Stats(), s.Err()
}

// Stats is what has been done so far.
func (s *Stamper) Stats() StampStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Err is the first error met, if any.
func (s *Stamper) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Stamper) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

func (s *Stamper) send(p []string) {
	select {
	case s.pages <- p:
	case <-s.ctx.Done():
		s.fail(s.ctx.Err())
	}
}

// reader filters pages down to the keys that need a write.
func (s *Stamper) reader() {
	defer s.rwg.Done()
	for p := range s.pages {
		if s.ctx.Err() != nil {
			continue // drain
		}
		need := p
		if s.check {
			var err error
			if need, err = s.unstamped(p); err != nil {
				s.fail(err)
				continue
			}
			if n := int64(len(p) - len(need)); n > 0 {
				s.progress(0, n)
			}
		}
		if len(need) == 0 {
			continue
		}
		select {
		case s.writes <- need:
		case <-s.ctx.Done():
		}
	}
}

// unstamped returns the keys of p that do not hold the stamper's epoch.
func (s *Stamper) unstamped(p []string) ([]string, error) {
	ops := make([]clientv3.Op, len(p))
	for i, k := range p {
		ops[i] = clientv3.OpGet(k)
	}
	resp, err := s.c.kv.Txn(s.ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("libmap: read %d epochs of %s: %w", len(p), s.scope, err)
	}
	var need []string
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 1 && string(kvs[0].Value) == s.value {
			continue
		}
		need = append(need, p[i])
	}
	return need, nil
}

// writer is the one goroutine that feeds the batch writer.
func (s *Stamper) writer() {
	defer close(s.wdone)
	for keys := range s.writes {
		if s.ctx.Err() != nil {
			continue // drain
		}
		for _, k := range keys {
			if err := s.w.Add(batch.Put(k, s.value)); err != nil {
				s.fail(err)
				break
			}
		}
	}
}

func (s *Stamper) progress(stamped, already int64) {
	s.mu.Lock()
	s.stats.Stamped += stamped
	s.stats.AlreadyStamped += already
	done := s.stats.Stamped + s.stats.AlreadyStamped
	s.mu.Unlock()
	if s.cfg.OnProgress != nil {
		s.progMu.Lock()
		s.cfg.OnProgress(done)
		s.progMu.Unlock()
	}
}
