package gateway

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
)

// The move's leases: a v2 TTL becomes a lease shared by the documents
// whose expiries fall in one window.

// addLeased queues a TTL document for the shared lease of documents
// whose expiry falls in the same window as exp. Windows are 1% of the
// remaining TTL (at least a second, at most a minute) and a lease lasts
// to its window's end: a document may outlive its v2 expiry by that much,
// never less. One grant per distinct second would cost a round trip per
// document when expiries are spread, as they are in a real store.
//
// Windows are reckoned from the move's start. A window's lease is granted
// in the background when the walk first meets it, and its documents wait
// (in memory, a grant's round trip) rather than the walk: flushLeased
// writes those whose lease is granted. A move that fails leaves the
// leases it did not use to expire on their own.
func (m *mover) addLeased(ctx context.Context, key, value string, exp time.Time) {
	end := leaseWindowEnd(exp, m.start)
	g, ok := m.leases[end]
	if !ok {
		g = m.startGrant(ctx, end)
	}
	m.waiting = append(m.waiting, leasedDoc{key: key, value: value, g: g})
}

// leasedDoc is a TTL document waiting for its window's lease.
type leasedDoc struct {
	key, value string
	g          *grant
}

// flushLeased writes the waiting documents whose lease is granted; all
// waits for every grant.
func (m *mover) flushLeased(ctx context.Context, w *batch.Writer, all bool) error {
	keep := m.waiting[:0]
	for _, d := range m.waiting {
		if all {
			select {
			case <-d.g.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case <-d.g.done:
			default:
				keep = append(keep, d)
				continue
			}
		}
		if d.g.err != nil {
			return d.g.err
		}
		if err := m.add(w, createItem(d.key, d.value, d.g.id)); err != nil {
			return err
		}
	}
	clear(m.waiting[len(keep):])
	m.waiting = keep
	return nil
}

// grant is one window's lease, granted in the background.
type grant struct {
	done chan struct{}
	id   clientv3.LeaseID
	err  error
}

// startGrant records the grant of window end's lease and starts it in the
// background, up to 64 at a time (a grant is a few bytes, and etcd
// commits concurrent ones together); grantsDone waits for it.
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

// leaseWindowEnd is the end (Unix seconds) of the lease window holding
// exp, as seen at now.
func leaseWindowEnd(exp, now time.Time) int64 {
	w := int64(exp.Sub(now) / time.Second / 100)
	w = min(max(w, 1), 60)
	sec := exp.Unix()
	return (sec + w - 1) / w * w
}
