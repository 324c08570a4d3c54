package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/semaphore"

	"github.com/rokup/rokup/batch"
)

// The move's copy: every document a create-only put, written as the walk
// of v2 reads it, and the conflicts a failed compare reveals.

// docBytes is what one document costs a transaction as the writer
// accounts it: key and value, and the framing of its compare and put.
func docBytes(key, value string) int { return len(key) + len(value) + 2*16 }

// copy reads v2 (readV2) and writes each document as it is read, in an
// item of its own (a create-only compare and a put) that the writer packs
// into transactions, several in flight while the walk goes on. Nothing
// but documents is written under the prefix: the state key, opened
// before, tells the revert which keys these puts created. Leases are
// granted on gctx as their windows first appear.
//
// The walk reads ahead of the writes by up to readAhead bytes of
// documents, handed to one goroutine that writes them: a walk that waited
// for the writer would let its reads run dry whenever etcd was busy
// committing, and each pause would cost a read's round trip.
func (m *mover) copy(ctx, gctx context.Context) error {
	t0 := time.Now()
	// Documents of a few hundred bytes fill a transaction's operations
	// long before its bytes: twice as many of those in flight keep etcd's
	// commits going while the walk's reads share its two cores, and the
	// bytes of InFlight full transactions still bound the memory.
	w := batch.New(ctx, m.cli, batch.Config{
		MaxOps:        m.opts.MaxTxnOps,
		MaxBytes:      m.opts.MaxRequestBytes,
		InFlight:      2 * m.opts.InFlight,
		InFlightBytes: m.opts.InFlight * m.opts.MaxRequestBytes,
		Guard:         m.opts.Guard,
		OnConflict:    m.resolve,
	})
	rctx, stopReads := context.WithCancel(ctx)
	defer stopReads()
	ahead := semaphore.NewWeighted(readAhead)
	queue := make(chan []*clientv2.Node, 1024)
	var werr error // the writing goroutine's; read once it is done
	var bytes int64
	written := make(chan struct{})
	go func() {
		defer close(written)
		for leaves := range queue {
			if werr == nil {
				if werr = m.write(ctx, gctx, w, leaves); werr != nil {
					stopReads()
				}
				for _, n := range leaves {
					bytes += int64(len(n.Value))
				}
				m.progress("copy", m.queued, 0, bytes)
			}
			ahead.Release(min(leavesBytes(leaves), readAhead))
		}
		if werr == nil {
			werr = m.flushLeased(ctx, w, true)
		}
	}()
	err := m.readV2(rctx, func(leaves []*clientv2.Node) error {
		if err := ahead.Acquire(rctx, min(leavesBytes(leaves), readAhead)); err != nil {
			return err
		}
		queue <- leaves
		return nil
	})
	m.rep.PhaseSeconds["read"] = time.Since(t0).Seconds()
	close(queue)
	<-written
	cerr := w.Close()
	m.rep.PhaseSeconds["copy"] = time.Since(t0).Seconds()
	m.rep.Txns = w.Stats().Txns
	m.rep.Leases = m.granted.Load()
	// What etcd holds, also when the copy stopped early: committed items
	// (or resolved ones), not queued ones.
	m.rep.Identical = m.identical.Load()
	m.rep.Overwritten = m.overwritten.Load()
	m.rep.Conflicts = m.conflicts.Load()
	m.rep.Created = w.Stats().Items - m.rep.Identical - m.rep.Overwritten - m.rep.Conflicts
	if werr != nil { // the cause; the walk was stopped for it
		err = werr
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrVerify) || errors.Is(err, ErrLagging) {
			return err
		}
		return fmt.Errorf("gateway: move: %w", err)
	}
	m.progress("copy", m.queued, m.queued, bytes)
	return nil
}

// readAhead bounds the documents the walk has read and the writer has not
// taken yet (values and keys, bytes).
const readAhead = 4 << 20

// write queues the items of documents the walk read (TTL ones once their
// lease is granted).
func (m *mover) write(ctx, gctx context.Context, w *batch.Writer, leaves []*clientv2.Node) error {
	for _, n := range leaves {
		if n.Expiration == nil {
			if err := m.add(w, createItem(n.Key, n.Value, 0)); err != nil {
				return err
			}
			continue
		}
		if time.Until(*n.Expiration) < expiryMargin {
			// Expiring in v2 now: its lease could be gone before the put
			// lands. Verification counts it as expired.
			continue
		}
		m.addLeased(gctx, n.Key, n.Value, *n.Expiration)
	}
	return m.flushLeased(ctx, w, false)
}

func leavesBytes(leaves []*clientv2.Node) int64 {
	var b int64
	for _, n := range leaves {
		b += int64(len(n.Key) + len(n.Value))
	}
	return b
}

// add queues one item.
func (m *mover) add(w *batch.Writer, it batch.Item) error {
	if err := w.Add(it); err != nil {
		return err
	}
	m.queued++
	return nil
}

// createItem is the item that creates key with value (on lease, when not
// 0) only if key is absent from v3.
func createItem(k, value string, lease clientv3.LeaseID) batch.Item {
	var opts []clientv3.OpOption
	if lease != 0 {
		opts = append(opts, clientv3.WithLease(lease))
	}
	// One allocation for both: the move makes one item per document.
	one := &struct {
		cmp [1]clientv3.Cmp
		op  [1]clientv3.Op
	}{
		cmp: [1]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
		op:  [1]clientv3.Op{clientv3.OpPut(k, value, opts...)},
	}
	return batch.Item{Cmps: one.cmp[:], Ops: one.op[:], Size: len(k) + len(value)}
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
