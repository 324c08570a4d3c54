package libmap

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultRequestTimeout bounds each request to etcd. The v3 client waits for
// a connection rather than failing, so without a bound a stamping run would
// hang while etcd is down; the bound is well above a leader election.
const DefaultRequestTimeout = 30 * time.Second

// ErrNoAnswer is returned when etcd does not answer one request within the
// request timeout (etcd down or without quorum). Re-running completes.
var ErrNoAnswer = errors.New("libmap: etcd did not answer")

// WithRequestTimeout sets the bound of each request (default
// DefaultRequestTimeout; 0 or less keeps it).
func WithRequestTimeout(d time.Duration) Option {
	return func(c *Cache) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// timeoutKV gives every request of kv its own deadline.
type timeoutKV struct {
	kv clientv3.KV
	d  time.Duration
}

func (k timeoutKV) call(ctx context.Context, f func(context.Context) error) error {
	tctx, cancel := context.WithTimeout(ctx, k.d)
	defer cancel()
	err := f(tctx)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w within %s", ErrNoAnswer, k.d)
	}
	return err
}

func (k timeoutKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (r *clientv3.PutResponse, err error) {
	err = k.call(ctx, func(c context.Context) (e error) { r, e = k.kv.Put(c, key, val, opts...); return })
	return
}

func (k timeoutKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (r *clientv3.GetResponse, err error) {
	err = k.call(ctx, func(c context.Context) (e error) { r, e = k.kv.Get(c, key, opts...); return })
	return
}

func (k timeoutKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (r *clientv3.DeleteResponse, err error) {
	err = k.call(ctx, func(c context.Context) (e error) { r, e = k.kv.Delete(c, key, opts...); return })
	return
}

func (k timeoutKV) Compact(ctx context.Context, rev int64, opts ...clientv3.CompactOption) (r *clientv3.CompactResponse, err error) {
	err = k.call(ctx, func(c context.Context) (e error) { r, e = k.kv.Compact(c, rev, opts...); return })
	return
}

func (k timeoutKV) Do(ctx context.Context, op clientv3.Op) (r clientv3.OpResponse, err error) {
	err = k.call(ctx, func(c context.Context) (e error) { r, e = k.kv.Do(c, op); return })
	return
}

func (k timeoutKV) Txn(ctx context.Context) clientv3.Txn {
	return &timeoutTxn{k: k, ctx: ctx}
}

// timeoutTxn records the transaction and sends it, bounded, on Commit.
type timeoutTxn struct {
	k         timeoutKV
	ctx       context.Context
	cmps      []clientv3.Cmp
	then, els []clientv3.Op
}

func (t *timeoutTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.cmps = append(t.cmps, cs...); return t }
func (t *timeoutTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.then = append(t.then, ops...)
	return t
}
func (t *timeoutTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.els = append(t.els, ops...)
	return t
}

func (t *timeoutTxn) Commit() (r *clientv3.TxnResponse, err error) {
	err = t.k.call(t.ctx, func(c context.Context) (e error) {
		r, e = t.k.kv.Txn(c).If(t.cmps...).Then(t.then...).Else(t.els...).Commit()
		return
	})
	return
}
