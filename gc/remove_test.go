package gc_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

// A removal waits on the file system (on a disk that discards freed
// blocks, for the journal's next commit), so the files of committed
// deletions are removed apart from the transactions: with one transaction
// in flight and every removal held, all 600 garbage chocks' epoch keys
// (five transactions) are still deleted. Were a writer to remove its
// transaction's files before sending the next, the held removals would
// hold every later deletion too. Then, released, every file goes and
// nothing stays set aside.
func TestRemovalsDoNotHoldUpTheDeletions(t *testing.T) {
	const garbage = 600
	tr := newGarbageTree(t, garbage)
	// The deadline only turns a hang into a failure.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// released closes once no key of the garbage is left, or at the
	// deadline.
	prefix := tr.cache.ScopePrefix(libmap.ChocksIdx, tr.node)
	released := make(chan struct{})
	var once sync.Once
	var left int64 = -1
	defer gc.SetTestHookRemove(func(string) {
		once.Do(func() {
			go func() {
				defer close(released)
				for ctx.Err() == nil {
					resp, err := tr.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
					if err == nil && resp.Count == 2 { // the two chocks the volume names
						left = 0
						return
					}
					if err == nil {
						left = resp.Count - 2
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
		})
		<-released
	})()
	cfg := tr.config(false)
	cfg.InFlight = 1
	r, err := gc.Run(context.Background(), tr.cli, cfg)
	if err != nil {
		t.Fatalf("gc: %v (report %+v)", err, r)
	}
	if left == -1 {
		t.Fatal("no removal was held")
	}
	if left != 0 {
		t.Fatalf("%d epoch keys were still there with the first removal held: the removals hold up the deletions", left)
	}
	if r.Deleted != garbage || r.Vanished != 0 {
		t.Errorf("deleted %d (vanished %d), want %d", r.Deleted, r.Vanished, garbage)
	}
	for i := uint64(100); i < 100+garbage; i++ {
		tr.gone(libmap.ChocksIdx, strconv.FormatUint(i, 10))
	}
	tr.kept(libmap.ChocksIdx, "1", "2")
	if n := gc.AsideFiles(tr.layout.Nodelocal); n != 0 {
		t.Errorf("%d files left set aside", n)
	}
}
