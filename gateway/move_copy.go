package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
)

// The move's copy phase: every document a create-only put, and the
// conflicts a failed compare reveals.

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
