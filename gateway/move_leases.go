package gateway

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The move's leases: a v2 TTL becomes a lease shared by the documents
// whose expiries fall in one window.

// lease returns the shared lease of documents whose expiry falls in the
// same window as exp. Windows are 1% of the remaining TTL (at least a
// second, at most a minute) and a lease lasts to its window's end: a
// document may outlive its v2 expiry by that much, never less. One grant
// per distinct second would cost a round trip per document when expiries
// are spread, as they are in a real store.
//
// Windows are reckoned from the move's start, so the count tells every
// window the copy will need, and grantLeases asks for them all at once
// (one at a time, a round trip and a commit each, they cost more than the
// copy of a small store); lease waits only for the one it needs. A move
// that fails leaves the leases it did not use to expire on their own.
func (m *mover) lease(ctx context.Context, exp time.Time) (clientv3.LeaseID, error) {
	end := leaseWindowEnd(exp, m.start)
	g, ok := m.leases[end]
	if !ok { // a window the count did not see: grant it now
		g = m.startGrant(ctx, end)
	}
	select {
	case <-g.done:
		return g.id, g.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// grant is one window's lease, granted in the background.
type grant struct {
	done chan struct{}
	id   clientv3.LeaseID
	err  error
}

// grantLeases starts the grants of every window of the count's TTL
// documents, up to 64 at a time (a grant is a few bytes, and etcd commits
// concurrent ones together).
func (m *mover) grantLeases(ctx context.Context) {
	for _, d := range m.ttl {
		if end := leaseWindowEnd(d.exp, m.start); m.leases[end] == nil {
			m.startGrant(ctx, end)
		}
	}
}

// startGrant records the grant of window end's lease and starts it in the
// background; grantsDone waits for it.
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
