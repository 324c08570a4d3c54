package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/semaphore"

	"github.com/rokup/rokup/fencing"
)

// Defaults match etcd's server limits, with room for the request envelope.
const (
	DefaultMaxOps   = 128
	DefaultMaxBytes = 1536*1024 - 64*1024
	DefaultInFlight = 8
	// itemOverhead approximates the protobuf framing of one op.
	itemOverhead = 16
)

var (
	// ErrConflict is returned when a transaction's item compares failed and
	// the writer has no OnConflict to resolve them.
	ErrConflict = errors.New("batch: compare failed")
	// ErrTooLarge is returned for one item that alone exceeds MaxBytes.
	ErrTooLarge = errors.New("batch: item larger than a request may be")
	// ErrClosed is returned by Add after Close.
	ErrClosed = errors.New("batch: writer closed")
)

// Item is one unit of work: its ops are committed together, and only if its
// compares hold. Most items are a single put.
type Item struct {
	Cmps []clientv3.Cmp
	Ops  []clientv3.Op
	// Size is the payload in bytes (keys plus values); it decides batching.
	Size int
	// Done, if set, is called once the transaction carrying the item has
	// committed (not when OnConflict resolves it: the resolver owns the
	// item then). It runs on the writer's goroutines, several at once.
	Done func()
	// Prepare, if set, is called on the writer's goroutine just before the
	// transaction carrying the item is sent, so that work which must
	// precede the write (a GC moving a file aside) happens as late as it
	// can; false leaves the item out of the transaction, and out of Done
	// and Abandon.
	Prepare func() bool
	// Abandon, if set, is called for a prepared item whose transaction
	// did not commit (its compares failed) or may not have (the request
	// failed): Prepare's work is to be undone. On failed compares it runs
	// before OnConflict gets the items, so a resolver that commits some
	// of them again runs their Prepare again.
	Abandon func()
}

// Put is the item for one unconditional put.
func Put(key, value string, opts ...clientv3.OpOption) Item {
	return Item{Ops: []clientv3.Op{clientv3.OpPut(key, value, opts...)}, Size: len(key) + len(value)}
}

// Config tunes a Writer. The zero value takes etcd's defaults.
type Config struct {
	MaxOps   int // operations (and compares) per transaction
	MaxBytes int // payload bytes per transaction
	InFlight int // transactions in flight at once
	// InFlightBytes, when set, also bounds the payload of the
	// transactions in flight: InFlight small ones, fewer large ones, so
	// that a writer of small items can keep many transactions in flight
	// without its memory growing to InFlight × MaxBytes on large ones.
	InFlightBytes int
	// Guard is added to every transaction; when it fails, the writer stops
	// with an error wrapping fencing.ErrNotLeader.
	Guard fencing.Guard
	// Cmps are added to every transaction, like Guard but with no meaning
	// of their own: when the transaction fails, OnConflict tells why.
	Cmps []clientv3.Cmp
	// OnConflict resolves a transaction whose item compares failed (the
	// guard still holding). It gets the batch's items and may write them one
	// by one; its error stops the writer. Nil means ErrConflict.
	OnConflict func(ctx context.Context, items []Item) error
	// OnCommit is called after each committed transaction with the number
	// of items and payload bytes it carried, for progress. It may be called
	// from several goroutines at once.
	OnCommit func(items, bytes int)
}

// Writer batches items into transactions. Add and Close are for one
// goroutine; the transactions run concurrently.
type Writer struct {
	ctx    context.Context
	cancel context.CancelFunc
	kv     clientv3.KV
	cfg    Config

	cur      []Item
	curOps   int
	curCmps  int
	curBytes int

	sem    chan struct{}
	bytes  *semaphore.Weighted // nil: InFlightBytes unset
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
	closed bool

	stats Stats
}

// Stats counts what a writer committed.
type Stats struct {
	Items int64
	Bytes int64
	Txns  int64
}

// New returns a writer on kv. Cancelling ctx abandons queued work: Close
// then returns the context's error.
func New(ctx context.Context, kv clientv3.KV, cfg Config) *Writer {
	if cfg.MaxOps <= 0 {
		cfg.MaxOps = DefaultMaxOps
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = DefaultInFlight
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Writer{ctx: ctx, cancel: cancel, kv: kv, cfg: cfg, sem: make(chan struct{}, cfg.InFlight)}
	if cfg.InFlightBytes > 0 {
		w.bytes = semaphore.NewWeighted(int64(cfg.InFlightBytes))
	}
	return w
}

// Add queues an item, sending a transaction when the current one is full.
// It blocks while InFlight transactions are outstanding, and returns the
// first error any transaction met, after which the writer is unusable.
func (w *Writer) Add(it Item) error {
	if err := w.Err(); err != nil {
		return err
	}
	if w.closed {
		return ErrClosed
	}
	// etcd bounds a transaction's compares and its operations separately
	// (each at --max-txn-ops), so they are counted apart: an item with one
	// compare and one put costs one of each, not two of one.
	ops, cmps := len(it.Ops), len(it.Cmps)
	size := it.Size + itemOverhead*(ops+cmps)
	shared := len(w.cfg.Guard.Cmps()) + len(w.cfg.Cmps)
	if size > w.cfg.MaxBytes || ops > w.cfg.MaxOps || cmps+shared > w.cfg.MaxOps {
		return fmt.Errorf("%w: %d bytes, %d ops, %d compares (limits %d bytes, %d ops)", ErrTooLarge, size, ops, cmps+shared, w.cfg.MaxBytes, w.cfg.MaxOps)
	}
	if len(w.cur) > 0 && (w.curOps+ops > w.cfg.MaxOps || w.curCmps+cmps+shared > w.cfg.MaxOps || w.curBytes+size > w.cfg.MaxBytes) {
		w.send()
	}
	if w.cur == nil {
		// Room for a transaction of single-op items: grown from nothing,
		// each transaction's slice was copied eight times on the way.
		w.cur = make([]Item, 0, w.cfg.MaxOps)
	}
	w.cur = append(w.cur, it)
	w.curOps += ops
	w.curCmps += cmps
	w.curBytes += size
	return w.Err()
}

// Flush sends the current partial transaction and waits for every
// transaction in flight.
func (w *Writer) Flush() error {
	if len(w.cur) > 0 {
		w.send()
	}
	w.wg.Wait()
	return w.Err()
}

// Close flushes and releases the writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.Err()
	}
	err := w.Flush()
	w.closed = true
	w.cancel()
	return err
}

// Err is the first error met, if any.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stats is what has been committed so far.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.cancel()
}

func (w *Writer) send() {
	items := w.cur
	// A transaction larger than the whole byte bound still goes, alone.
	weight := int64(min(w.curBytes, w.cfg.InFlightBytes))
	w.cur, w.curOps, w.curCmps, w.curBytes = nil, 0, 0, 0
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		w.fail(w.ctx.Err())
		return
	}
	if w.bytes != nil {
		if err := w.bytes.Acquire(w.ctx, weight); err != nil {
			<-w.sem
			w.fail(err)
			return
		}
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.sem }()
		if w.bytes != nil {
			defer w.bytes.Release(weight)
		}
		if err := w.commit(items); err != nil {
			w.fail(err)
		}
	}()
}

func (w *Writer) commit(items []Item) error {
	items = prepare(items)
	if len(items) == 0 {
		return nil
	}
	// Sized before they are filled: an Op is a few hundred bytes, and a
	// transaction of 128 puts grown by append copied its ops eight times.
	nCmps, nOps := 0, 0
	for _, it := range items {
		nCmps += len(it.Cmps)
		nOps += len(it.Ops)
	}
	guard := w.cfg.Guard.Cmps()
	cmps := make([]clientv3.Cmp, 0, len(guard)+len(w.cfg.Cmps)+nCmps)
	cmps = append(append(cmps, guard...), w.cfg.Cmps...)
	ops := make([]clientv3.Op, 0, nOps)
	bytes := 0
	for _, it := range items {
		cmps = append(cmps, it.Cmps...)
		ops = append(ops, it.Ops...)
		bytes += it.Size
	}
	resp, err := w.kv.Txn(w.ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		abandon(items)
		return fmt.Errorf("batch: commit %d items: %w", len(items), err)
	}
	if !resp.Succeeded {
		abandon(items) // nothing of the transaction landed
		if err := w.cfg.Guard.Check(w.ctx, w.kv); err != nil {
			return err
		}
		if w.cfg.OnConflict == nil {
			return fmt.Errorf("%w in a transaction of %d items", ErrConflict, len(items))
		}
		if err := w.cfg.OnConflict(w.ctx, items); err != nil {
			return err
		}
	} else {
		for _, it := range items {
			if it.Done != nil {
				it.Done()
			}
		}
	}
	w.mu.Lock()
	w.stats.Items += int64(len(items))
	w.stats.Bytes += int64(bytes)
	w.stats.Txns++
	w.mu.Unlock()
	if w.cfg.OnCommit != nil {
		w.cfg.OnCommit(len(items), bytes)
	}
	return nil
}

// prepare runs the items' Prepare hooks and returns those that go into the
// transaction.
func prepare(items []Item) []Item {
	if !slices.ContainsFunc(items, func(it Item) bool { return it.Prepare != nil }) {
		return items // the common case: nothing to prepare, nothing to copy
	}
	out := make([]Item, 0, len(items))
	for _, it := range items {
		if it.Prepare == nil || it.Prepare() {
			out = append(out, it)
		}
	}
	return out
}

// abandon undoes the prepared items of a transaction that did not commit.
func abandon(items []Item) {
	for _, it := range items {
		if it.Abandon != nil {
			it.Abandon()
		}
	}
}
