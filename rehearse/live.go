package rehearse

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/upgrade"
)

// Live is a live cluster to rehearse from. It is only read: range reads
// in v3, plain (not quorum) GETs in v2, so neither its v3 revision nor
// its v2 index moves.
type Live struct {
	V3 *clientv3.Client
	// V2 is the v2 keys API as conn.NewKeysAPI makes it (it reads whole
	// subtrees within a budget).
	V2        clientv2.KeysAPI
	Endpoints []string
}

// LiveRead is what was read from the live cluster into the copy.
type LiveRead struct {
	Endpoints  []string `json:"endpoints"`
	V2Keys     int64    `json:"v2_keys"`
	V2Dirs     int64    `json:"v2_empty_dirs"`
	V3Keys     int64    `json:"v3_keys"`
	V2Index    uint64   `json:"v2_index"`    // the live v2 index before the read
	V3Revision int64    `json:"v3_revision"` // the live v3 revision the v3 keys were read at
	Seconds    float64  `json:"seconds"`
}

// liveWorkers bounds the v2 writes into the copy (v2 has no batching).
const liveWorkers = 16

// importLive reads what the run's etcd-side steps read from the live
// cluster into the new member: in v2 the Gateway's documents (TTLs kept,
// empty directories too), the hidden ledger and liveness paths, and the
// stale epoch cache; in v3 the keys under the Gateway prefix, the move's
// state key, the GC fence and the upgrade's run records.
func (x *rehearsal) importLive(ctx context.Context) error {
	live := x.opts.Live
	lr := &LiveRead{Endpoints: live.Endpoints}
	x.r.Live = lr
	t0 := time.Now()
	resp, err := live.V2.Get(ctx, "/", nil)
	if err != nil {
		return fmt.Errorf("rehearse: read the live cluster's v2: %w", conn.V2Error(err))
	}
	lr.V2Index = resp.Index

	w := newV2Writer(ctx, x.c.keys)
	for _, root := range []string{x.r.GWPrefix, x.r.GWPrefix + "/_migrations", x.r.GWPrefix + "/_alive", x.opts.V2Epochs} {
		err := walkTree(ctx, live.V2, root, func(n *clientv2.Node) error {
			return w.set(n.Key, n.Value, n.TTL, false)
		}, func(dir string) error {
			if dir == root && root != x.r.GWPrefix {
				return nil // a hidden path with nothing in it
			}
			lr.V2Dirs++
			return w.set(dir, "", 0, true)
		})
		if err != nil {
			w.close()
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	lr.V2Keys = w.n.Load() - lr.V2Dirs

	rev := int64(0)
	for _, r := range []struct {
		key    string
		prefix bool
	}{
		{x.r.GWPrefix + "/", true},
		{gateway.StateKey(x.r.GWPrefix), false},
		{fencing.DefaultFenceKey, false},
		{upgrade.DefaultKeys.Runs(), true},
	} {
		n, at, err := copyV3(ctx, live.V3, x.c.v3, r.key, r.prefix, rev)
		if err != nil {
			return err
		}
		rev, lr.V3Keys = at, lr.V3Keys+n
	}
	lr.V3Revision = rev
	lr.Seconds = time.Since(t0).Seconds()
	return x.liveRights(ctx, live.V3)
}

// copyV3 copies the keys at key (under it, with prefix) from one v3 store
// to the other, page by page, all read at revision rev (0: the current
// one, returned for the next reads). Leases are not copied: the keys the
// steps read under a lease are documents the move compares by bytes.
func copyV3(ctx context.Context, from, to *clientv3.Client, key string, prefix bool, rev int64) (int64, int64, error) {
	const page = 500
	var n int64
	start, end := key, ""
	if prefix {
		end = clientv3.GetPrefixRangeEnd(key)
	}
	for {
		opts := []clientv3.OpOption{clientv3.WithRev(rev), clientv3.WithLimit(page), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if end != "" {
			opts = append(opts, clientv3.WithRange(end))
		}
		resp, err := from.Get(ctx, start, opts...)
		if err != nil {
			return n, rev, fmt.Errorf("rehearse: read the live cluster's v3 %s: %w", key, err)
		}
		rev = resp.Header.Revision
		for _, kv := range resp.Kvs {
			if _, err := to.Put(ctx, string(kv.Key), string(kv.Value)); err != nil {
				return n, rev, fmt.Errorf("rehearse: write %s into the copy: %w", kv.Key, err)
			}
			n++
		}
		if !resp.More || end == "" || len(resp.Kvs) == 0 {
			return n, rev, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// v2Writer sets keys in the copy's v2 store from a few goroutines.
type v2Writer struct {
	ctx  context.Context
	keys clientv2.KeysAPI
	jobs chan v2Set
	wg   sync.WaitGroup
	n    atomic.Int64
	mu   sync.Mutex
	err  error
}

type v2Set struct {
	key, value string
	ttl        int64
	dir        bool
}

func newV2Writer(ctx context.Context, keys clientv2.KeysAPI) *v2Writer {
	w := &v2Writer{ctx: ctx, keys: keys, jobs: make(chan v2Set, liveWorkers)}
	for i := 0; i < liveWorkers; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				_, err := keys.Set(ctx, j.key, j.value, &clientv2.SetOptions{TTL: time.Duration(j.ttl) * time.Second, Dir: j.dir})
				if err != nil {
					w.fail(fmt.Errorf("rehearse: write v2 %s into the copy: %w", j.key, conn.V2Error(err)))
					continue
				}
				w.n.Add(1)
			}
		}()
	}
	return w
}

func (w *v2Writer) set(key, value string, ttl int64, dir bool) error {
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case w.jobs <- v2Set{key: key, value: value, ttl: ttl, dir: dir}:
		return nil
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
}

func (w *v2Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *v2Writer) close() error {
	close(w.jobs)
	w.wg.Wait()
	return w.err
}
