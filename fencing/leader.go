package fencing

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// Campaign campaigns on the election at prefix (with or without its
// trailing slash: /rok/upgrade/leader/ puts keys at
// /rok/upgrade/leader/<lease>) with s's lease, and returns
// the election and the guard of the term it won. It blocks until elected
// or ctx is cancelled (then it returns ctx's error and holds nothing).
//
// It closes the "phantom leadership" hole of concurrency.Election: a
// Campaign may return after its session expired (the key is gone, or
// another campaign created it anew), so the term is checked in etcd before
// it is handed out, and refused with ErrNotLeader when it already ended.
// The guard still has to go into every write: the term can end at any time.
func Campaign(ctx context.Context, s *concurrency.Session, prefix, val string) (*concurrency.Election, Guard, error) {
	e := concurrency.NewElection(s, strings.TrimSuffix(prefix, "/"))
	if err := e.Campaign(ctx, val); err != nil {
		return nil, Guard{}, fmt.Errorf("fencing: campaign on %s: %w", prefix, err)
	}
	g := NewGuard(e.Key(), e.Rev())
	select {
	case <-s.Done():
		return nil, Guard{}, fmt.Errorf("%w: session of %s expired while campaigning", ErrNotLeader, g)
	default:
	}
	if err := g.Check(ctx, s.Client()); err != nil {
		return nil, Guard{}, err
	}
	return e, g, nil
}
