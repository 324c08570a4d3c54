package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/rokup/rokup/conn"
)

// The move's verification: v3 read back against what the copy read (by
// key ranges, when v2 has not moved since the copy began) or against v2
// walked again (naming every difference).

// verify checks v3 against v2, by v2's quorum index q1 read now, through
// the leader. When q1 is still I0 (m.rep.V2Index), nothing in v2 was
// written, deleted or expired since just before the copy, every read of
// the copy saw v2 as of I0, and the checksum of what it read stands for
// v2: watchVerify compares it with what a watch of v3 saw during the copy
// (move_watch.go), or, when the watch cannot tell, fastVerify reads v3
// back by key ranges against it. Otherwise, or when v3 does not match it,
// walkVerify walks v2 again and compares key by key, which names what
// differs.
func (m *mover) verify(ctx context.Context) error {
	q, err := m.quorumIndex(ctx)
	if err != nil {
		return err
	}
	ok, err := m.watchVerify(ctx, q)
	if err != nil || ok {
		return err
	}
	ok, err = m.fastVerify(ctx, q)
	if err != nil || ok {
		return err
	}
	return m.walkVerify(ctx, q)
}

// fastVerify reads v3 back in key ranges, when v2's index shows that
// nothing in v2 was written, deleted or expired since the copy began: v2
// is then exactly what the copy read, and the copy's checksum stands for
// it. The v3 keys under the prefix (but the ledger, whose v2 documents
// are compared one by one) must hold exactly those pairs. It returns
// false, nil when it cannot tell: v2 moved, or v3 differs (a v3-only key,
// say, which is no failure, or a changed one, which is), and walkVerify
// decides.
func (m *mover) fastVerify(ctx context.Context, index uint64) (bool, error) {
	if index == 0 || index != m.rep.V2Index {
		return false, nil // moved, or no index to go by
	}
	want := m.read
	// One snapshot of v3 for the ledger documents and the ranges.
	first, err := m.cli.Get(ctx, m.opts.Prefix+"/", clientv3.WithLimit(1))
	if err != nil {
		return false, fmt.Errorf("gateway: verify: read v3 under %s: %w", m.opts.Prefix, err)
	}
	rev := first.Header.Revision
	var ledger digest
	if len(m.ledger) > 0 {
		rr, err := m.cli.Txn(ctx).Then(m.ledgerGets(rev)...).Commit()
		if errors.Is(err, rpctypes.ErrCompacted) {
			return false, nil // compacted meanwhile: walk instead
		}
		if err != nil {
			return false, fmt.Errorf("gateway: verify: read v3 %s: %w", m.ledger[0].Key, err)
		}
		var ok bool
		if ledger, ok = m.ledgerHolds(rr.Responses); !ok {
			return false, nil
		}
	}
	ledgerKeys := []byte(ledgerDir(m.opts.Prefix))
	got, err := m.scanV3(ctx, rev, func(kvs []*mvccpb.KeyValue, d *digest) (n int64) {
		for _, kv := range kvs {
			if bytes.HasPrefix(kv.Key, ledgerKeys) {
				continue
			}
			d.addHash(pairHash(kv.Key, kv.Value), len(kv.Value))
			n++
		}
		return n
	}, int64(len(m.ledger)), want.n)
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

// ledgerGets reads, at rev, the ledger documents the copy read from v2.
func (m *mover) ledgerGets(rev int64) []clientv3.Op {
	gets := make([]clientv3.Op, len(m.ledger))
	for i, n := range m.ledger {
		gets[i] = clientv3.OpGet(n.Key, clientv3.WithRev(rev))
	}
	return gets
}

// ledgerHolds reports whether the answers to ledgerGets (in its order)
// show every ledger document with v2's bytes, and returns their digest.
func (m *mover) ledgerHolds(answers []*etcdserverpb.ResponseOp) (digest, bool) {
	var d digest
	for i, n := range m.ledger {
		kvs := answers[i].GetResponseRange().Kvs
		if len(kvs) != 1 || string(kvs[0].Value) != n.Value {
			return digest{}, false
		}
		d.add(n.Key, n.Value)
	}
	return d, true
}

// scanV3 reads v3 under the prefix, every range at revision rev,
// in ranges split at keys the copy sampled, InFlight ranges at once, each
// in pages of at most scanPageBytes were they the largest documents the
// copy read (see largest). fn folds a page into its range's digest and
// says how many documents it counted, for the progress (which starts at
// done); scanV3 returns the sum of the digests.
func (m *mover) scanV3(ctx context.Context, rev int64, fn func([]*mvccpb.KeyValue, *digest) int64, done, total int64) (digest, error) {
	bounds := append([]string{m.opts.Prefix + "/"}, m.splits()...)
	bounds = append(bounds, m.opts.Prefix+"0")
	limit := m.largest.pageLimit(scanPageBytes)
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
			for p := conn.NewPager(m.cli, from, end, limit, clientv3.WithRev(rev)); p.More(); {
				kvs, err := p.Next(gctx)
				if err != nil {
					return err
				}
				n := fn(kvs, &d)
				mu.Lock() // progress is reported from one goroutine at a time
				seen += n
				m.progress("verify", seen, total, 0)
				mu.Unlock()
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
// pages are read and decoded at once. A page asks for scanPageMin
// documents at least (more than scanPageBytes only when such documents
// are that large), scanPageMax at most.
const (
	scanPageBytes = 512 << 10
	scanPageMin   = 16
	scanPageMax   = 2048
)

// splits returns the sorted, distinct keys the copy sampled.
func (m *mover) splits() []string {
	s := slices.Clone(m.sample)
	slices.Sort(s)
	return slices.Compact(s)
}

// walkVerify walks v2 again (from the cluster's index q on) and reads v3
// back key by key. v3 must hold every document v2 holds now, byte for
// byte, and every document the copy read must be in v2 still, or gone
// from v3 too: a document deleted from v2 before the copy read it is in
// neither, and the copy is consistent. Each difference is named: a
// document written in v2 after the copy read it (changed, or created in
// a directory already read), one deleted from v2 after it was copied,
// one whose v3 bytes differ from v2's unchanged ones. A TTL document
// gone from v2 past its expiry expired.
func (m *mover) walkVerify(ctx context.Context, q uint64) error {
	var walked []uint64 // keyHash of every v2 document now
	rb := newReadBack(ctx, m, m.read.n)
	m.w.floor = q
	index, err := m.w.walk(ctx, m.opts.Prefix, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			walked = append(walked, keyHash(n.Key))
			if err := rb.add(readDoc{n: n, h: pairHash(n.Key, n.Value)}); err != nil {
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
	m.rep.Expired = rb.expired

	// What the copy read and v2 no longer holds: expired, deleted before
	// the copy read it (then not in v3 either), or deleted after.
	slices.Sort(walked)
	gone := map[uint64]bool{}
	for _, h := range m.keys {
		if _, ok := slices.BinarySearch(walked, h); !ok {
			gone[h] = true
		}
	}
	for k, d := range m.ttl {
		if h := keyHash(k); gone[h] && time.Until(d.exp) <= expiryMargin {
			delete(gone, h)
			m.rep.Expired++
		}
	}
	changes, nchanged := rb.changes, rb.changed
	if len(gone) > 0 {
		var mu sync.Mutex
		rev, err := m.v3Revision(ctx)
		if err != nil {
			return err
		}
		if _, err := m.scanV3(ctx, rev, func(kvs []*mvccpb.KeyValue, _ *digest) int64 {
			for _, kv := range kvs {
				if gone[keyHash(string(kv.Key))] {
					mu.Lock()
					if nchanged++; len(changes) < 2*listMax {
						changes = append(changes, fmt.Sprintf("%s was deleted from v2 after the move copied it", kv.Key))
					}
					mu.Unlock()
				}
			}
			return 0
		}, 0, 0); err != nil {
			return fmt.Errorf("gateway: verify: read v3 under %s: %w", m.opts.Prefix, err)
		}
	}
	if nchanged > 0 {
		slices.Sort(changes)
		m.rep.V2Changes = changes
		return fmt.Errorf("%w: v2 changed during the move: %s; nothing was recorded; stop every writer of the Gateway store and re-run", ErrVerify, listed(changes, nchanged, 10))
	}
	if rb.mismatches > 0 {
		return fmt.Errorf("%w: %d v3 keys do not hold their v2 bytes (first: %s); nothing was recorded", ErrVerify, rb.mismatches, strings.Join(rb.firstMismatch, ", "))
	}
	m.rep.Checksum = rb.v3sum.String()
	m.rep.Docs = rb.v3sum.n
	m.rep.VerifiedIndex = index
	return nil
}

// v3Revision is v3's revision now.
func (m *mover) v3Revision(ctx context.Context) (int64, error) {
	resp, err := m.cli.Get(ctx, m.opts.Prefix+"/", clientv3.WithLimit(1), clientv3.WithKeysOnly())
	if err != nil {
		return 0, fmt.Errorf("gateway: verify: read v3 under %s: %w", m.opts.Prefix, err)
	}
	return resp.Header.Revision, nil
}

// listed joins the first n of s, and says how many more of total there
// are.
func listed(s []string, total int64, n int) string {
	s = first(s, n)
	out := strings.Join(s, "; ")
	if more := total - int64(len(s)); more > 0 {
		out += fmt.Sprintf("; and %d more", more)
	}
	return out
}

// keySeed seeds keyHash: the copy's and verification's hashes of one
// process compare; nothing keeps them.
var keySeed = maphash.MakeSeed()

// keyHash is a 64-bit hash of a key, to tell which documents the copy
// read that v2 no longer holds, at 8 bytes a document.
func keyHash(k string) uint64 { return maphash.String(keySeed, k) }
