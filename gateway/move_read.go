package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	clientv2 "go.etcd.io/etcd/client/v2"
)

// The move's read phase: the liveness check, the count of v2 (which
// spools the documents for the copy and samples keys for the
// verification), and the v2 indexes that prove the reads were not stale.

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
