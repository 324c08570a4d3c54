package fencing

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Guard is a leadership term: the election key a master won and that key's
// create revision. A campaign that wins again creates a new key with a new
// revision, so (Key, Rev) names one term and no other. The zero Guard guards
// nothing; it is what non-leader work carries.
type Guard struct {
	Key string
	Rev int64
}

// NewGuard returns the guard of the term that created key at rev.
func NewGuard(key string, rev int64) Guard { return Guard{Key: key, Rev: rev} }

// isZero reports whether g guards nothing.
func (g Guard) isZero() bool { return g.Key == "" }

// Cmps holds while the term lasts: put it in the If of every master-only
// transaction, If(append(g.Cmps(), own...)...). The zero guard's is empty.
func (g Guard) Cmps() []clientv3.Cmp {
	if g.isZero() {
		return nil
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(g.Key), "=", g.Rev)}
}

// Check tells apart the two reasons a guarded transaction can fail: it
// returns an error wrapping ErrNotLeader when the term has ended, and nil
// when the term still holds (so the caller's own compare failed).
func (g Guard) Check(ctx context.Context, kv clientv3.KV) error {
	if g.isZero() {
		return nil
	}
	resp, err := kv.Get(ctx, g.Key)
	if err != nil {
		return fmt.Errorf("fencing: check leadership %s: %w", g.Key, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != g.Rev {
		return fmt.Errorf("%w: term %s@%d has ended", ErrNotLeader, g.Key, g.Rev)
	}
	return nil
}

// String names the term in logs and errors.
func (g Guard) String() string {
	if g.isZero() {
		return "unguarded"
	}
	return fmt.Sprintf("%s@%d", g.Key, g.Rev)
}
