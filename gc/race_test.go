package gc_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

// The fence is set while a GC sweeps a large tree, with deletions in
// flight: every epoch-key deletion etcd records must come before the
// fence's revision, and the run stops with the fenced error and a count
// that matches what was deleted.
func TestFenceSetWhileSweepingStopsEveryLaterDeletion(t *testing.T) {
	stopMidSweep(t, func(ctx context.Context, tr *tree) int64 {
		h, err := fencing.NewFence(tr.cli).Set(ctx, "upgrade/r1", "Rok 0.14 upgrade")
		if err != nil {
			t.Error(err)
		}
		return h.Rev
	}, func(r *gc.Report, err error) {
		if !errors.Is(err, fencing.ErrFenced) || !strings.Contains(err.Error(), "upgrade/r1") || r.Stopped == "" {
			t.Fatalf("want the fenced error naming the holder, got %v (report %+v)", err, r)
		}
	})
}

// The GC's instance lease is revoked while it sweeps (it was paused past
// its TTL, or partitioned): no deletion commits after the revocation, and
// the run stops saying its instance was lost.
func TestInstanceLostWhileSweepingStopsEveryLaterDeletion(t *testing.T) {
	stopMidSweep(t, func(ctx context.Context, tr *tree) int64 {
		resp, err := tr.cli.Get(ctx, "/rok/gc/instances/"+tr.node)
		if err != nil || len(resp.Kvs) == 0 {
			t.Errorf("instance key: %v", err)
			return 0
		}
		r, err := tr.cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
		if err != nil {
			t.Error(err)
			return 0
		}
		return r.Header.Revision
	}, func(r *gc.Report, err error) {
		if !errors.Is(err, fencing.ErrInstanceLost) {
			t.Fatalf("want the instance-lost error, got %v (report %+v)", err, r)
		}
	})
}

// stopMidSweep sweeps 3,000 garbage chocks and calls stop once the first
// deletion committed, with more in flight; stop returns the revision from
// which no deletion may commit. Then it checks the run's error (stopped),
// that etcd recorded no deletion after that revision and as many as the
// report says, that nothing is left set aside, and that exactly the
// deleted objects' files are gone.
func stopMidSweep(t *testing.T, stop func(context.Context, *tree) int64, stopped func(*gc.Report, error)) {
	const garbage = 3000
	tr := newGarbageTree(t, garbage)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start, err := tr.cli.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	events := tr.cli.Watch(ctx, "/epochs/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))

	var stopRev int64
	var seen atomic.Int64
	defer gc.SetTestHookStep(func(step, _ string) {
		if step == gc.StepFinish && seen.Add(1) == 1 {
			atomic.StoreInt64(&stopRev, stop(ctx, tr))
		}
	})()
	r, err := gc.Run(ctx, tr.cli, tr.config(false))
	stopped(r, err)
	// A marker put after the run ends the watch: everything the run did
	// comes before it.
	if _, err := tr.cli.Put(ctx, "/epochs/~end-of-test", "1"); err != nil {
		t.Fatal(err)
	}
	var deletions, after int64
	for done := false; !done; {
		resp := <-events
		for _, ev := range resp.Events {
			switch {
			case string(ev.Kv.Key) == "/epochs/~end-of-test":
				done = true
			case ev.Type == clientv3.EventTypeDelete:
				deletions++
				if ev.Kv.ModRevision > atomic.LoadInt64(&stopRev) {
					after++
				}
			}
		}
	}
	if after != 0 {
		t.Fatalf("%d deletions committed after revision %d", after, stopRev)
	}
	if deletions != r.Deleted || deletions == 0 || deletions >= garbage {
		t.Fatalf("etcd saw %d deletions, the report says %d (of %d garbage)", deletions, r.Deleted, garbage)
	}
	if n := gc.AsideFiles(tr.layout.Nodelocal); n != 0 {
		t.Fatalf("%d files left set aside by the stopped run", n)
	}
	files, err := os.ReadDir(tr.layout.Dir(libmap.ChocksIdx))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(files)) != 2+garbage-r.Deleted {
		t.Fatalf("%d chock files left, want %d: a file went without its key, or stayed after it", len(files), 2+garbage-r.Deleted)
	}
	t.Logf("stopped at revision %d after %d of %d deletions", stopRev, r.Deleted, garbage)
}

// Trials of a composer touching an object while the GC sweeps it:
// whenever the touch answered "exists", the object is still there.
func TestTouchRacingTheSweepNeverLosesATouchedObject(t *testing.T) {
	// Real concurrency, so which side wins each trial is up to the
	// scheduler; TestEveryInterleavingOfASweepAndAComposerKeepsTheComposersWrite
	// drives each order on purpose. ROKUP_GC_RACE_TRIALS runs more.
	trials := 300
	if testing.Short() {
		trials = 100
	}
	if v, err := strconv.Atoi(os.Getenv("ROKUP_GC_RACE_TRIALS")); err == nil && v > 0 {
		trials = v
	}
	tr := newTree(t)
	ctx := context.Background()
	var touchWon, sweepWon int
	for i := 0; i < trials; i++ {
		name := tr.chock(uint64(i))
		e, err := tr.cache.Current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		key := tr.cache.Key(libmap.ChocksIdx, tr.id(libmap.ChocksIdx, name))
		if _, err := tr.cli.Put(ctx, key, strconv.FormatUint(e, 10)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var exists bool
		var touchErr error
		restore := gc.SetTestHookCollect(func(string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				exists, touchErr = tr.cache.Touch(ctx, libmap.ChocksIdx, tr.node, name)
			}()
		})
		r, err := gc.Run(ctx, tr.cli, tr.config(false))
		restore()
		wg.Wait()
		if err != nil || touchErr != nil {
			t.Fatalf("trial %d: gc %v, touch %v", i, err, touchErr)
		}
		if exists {
			touchWon++
			if !tr.present(libmap.ChocksIdx, name) || tr.epoch(libmap.ChocksIdx, name) == "" {
				t.Fatalf("trial %d: the touch answered exists, yet the object was collected (report %+v)", i, r)
			}
			os.Remove(tr.layout.Path(libmap.ChocksIdx, name))
			tr.cli.Delete(ctx, key)
		} else {
			sweepWon++
			if tr.present(libmap.ChocksIdx, name) || r.Deleted != 1 {
				t.Fatalf("trial %d: the touch answered missing, yet the object is there (report %+v)", i, r)
			}
		}
	}
	t.Logf("%d trials: the touch won %d, the sweep won %d", trials, touchWon, sweepWon)
}
