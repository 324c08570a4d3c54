package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
)

// The move's read side: the liveness check and v2's index I0 just before
// the copy, the one walk of v2 that feeds the copy (and records what
// verification needs), and the check that no read was stale.

// alive lists the Gateway liveness keys; v2 hides _alive, so it is read
// by name. The read goes through the leader, so its index is the
// cluster's as the move starts (I0): the copy's reads must not be behind
// it.
func (m *mover) alive(ctx context.Context) ([]string, uint64, error) {
	dir := m.opts.Prefix + "/_alive"
	resp, err := m.kapi.Get(ctx, dir, &clientv2.GetOptions{Sort: true, Quorum: true})
	if clientv2.IsKeyNotFound(err) {
		return nil, errIndex(err), nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("gateway: read v2 %s: %w", dir, conn.V2Error(err))
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

// readV2 walks v2 once, from index m.rep.V2Index on, and hands each
// directory's (or whole subtree's) documents to copy (nil: a dry run),
// after recording what verification needs: the digest of every document
// read, its key hash, one digest per TTL document (they may expire during
// the move), the hidden ledger documents, a sample of keys, the empty
// directories. It fails on a document too large for one transaction and
// on one written in v2 after the move began, each named, before handing
// it to copy; and on a read answered from behind index V2Index (a lagging
// member), before handing that read's documents on.
func (m *mover) readV2(ctx context.Context, copy func([]*clientv2.Node) error) error {
	ledger := ledgerDir(m.opts.Prefix)
	m.w.floor = m.rep.V2Index
	_, err := m.w.walk(ctx, m.opts.Prefix, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			if need := docBytes(n.Key, n.Value); need > m.opts.MaxRequestBytes {
				return fmt.Errorf("%w: %s holds %d bytes, and one transaction may carry %d (--max-request-bytes; etcd's server limit is 1.5 MiB by default); nothing was recorded; shrink or remove it in v2 and re-run (what was copied stays, and converges)", ErrTooLarge, n.Key, len(n.Value), m.opts.MaxRequestBytes)
			}
			if m.rep.V2Index != 0 && n.ModifiedIndex > m.rep.V2Index {
				return m.changed(n)
			}
			m.largest.add(len(n.Key) + len(n.Value))
			m.sampleKey(n.Key)
			m.keys = append(m.keys, keyHash(n.Key))
			if strings.HasPrefix(n.Key, ledger) {
				m.ledger = append(m.ledger, n)
			}
			h := pairHash(n.Key, n.Value)
			m.read.addHash(h, len(n.Value))
			if n.Expiration != nil {
				m.ttl[n.Key] = &ttlDoc{h: h, exp: *n.Expiration}
			}
		}
		m.rep.Docs, m.rep.Bytes, m.rep.TTLDocs = m.read.n, m.read.bytes, int64(len(m.ttl))
		if copy == nil {
			m.progress("read", m.read.n, 0, m.read.bytes)
			return nil
		}
		return copy(leaves)
	}, func(dir string) {
		m.rep.EmptyDirs++
		if len(m.rep.EmptyDirList) < listMax {
			m.rep.EmptyDirList = append(m.rep.EmptyDirList, dir)
		}
	})
	return err
}

func (m *mover) changed(n *clientv2.Node) error {
	what := fmt.Sprintf("%s was written at v2 index %d, after the move began at index %d", n.Key, n.ModifiedIndex, m.rep.V2Index)
	m.rep.V2Changes = []string{what}
	return fmt.Errorf("%w: v2 changed during the move: %s; nothing was recorded; stop every writer of the Gateway store and re-run", ErrVerify, what)
}

// sampleKey keeps a uniform sample of the keys read (reservoir
// sampling), whose sorted keys split v3 into ranges of about the same
// size.
func (m *mover) sampleKey(k string) {
	const size = 64
	if len(m.sample) < size {
		m.sample = append(m.sample, k)
	} else if i := rand.Int64N(m.read.n + 1); i < size {
		m.sample[i] = k
	}
}

// largest keeps the sizes of the scanPageMax largest documents read (a
// min-heap), so that a read-back page of n documents is known to hold at
// most the n largest: a few large blobs in a store no longer make every
// page small.
type largest []int

func (l *largest) add(size int) {
	h := *l
	if len(h) < scanPageMax {
		h = append(h, size)
		for i := len(h) - 1; i > 0 && h[(i-1)/2] > h[i]; i = (i - 1) / 2 {
			h[i], h[(i-1)/2] = h[(i-1)/2], h[i]
		}
		*l = h
		return
	}
	if size <= h[0] {
		return
	}
	h[0] = size
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1] < h[c] {
			c++
		}
		if h[i] <= h[c] {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// pageLimit is how many documents a read-back page may ask for: as many
// as fit in budget bytes were they the largest ones read, at least
// scanPageMin, at most scanPageMax.
func (l largest) pageLimit(budget int) int64 {
	s := slices.Clone([]int(l))
	slices.SortFunc(s, func(a, b int) int { return b - a })
	n, sum := 0, 0
	for _, size := range s {
		if sum += size; sum > budget {
			break
		}
		n++
	}
	if n == len(s) {
		n = scanPageMax
	}
	return int64(min(max(n, scanPageMin), scanPageMax))
}

// quorumIndex is the cluster's v2 index now, read through the leader.
func (m *mover) quorumIndex(ctx context.Context) (uint64, error) {
	resp, err := m.kapi.Get(ctx, m.opts.Prefix, &clientv2.GetOptions{Quorum: true})
	switch {
	case clientv2.IsKeyNotFound(err): // no store at all: its index still tells
		return errIndex(err), nil
	case err != nil:
		return 0, fmt.Errorf("gateway: read v2 %s: %w", m.opts.Prefix, conn.V2Error(err))
	}
	return resp.Index, nil
}
