package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// The move's verification: v3 read back against the count (by key ranges
// when v2 has not moved) or against v2 walked again (naming what changed).

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
