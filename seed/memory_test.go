package seed_test

import (
	"context"
	"os"
	"runtime"
	"sync"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/seed"
)

// discard is a v2 store that keeps nothing: the seed's own memory is
// measured, not an embedded etcd's.
type discard struct {
	clientv2.KeysAPI
	mu   sync.Mutex
	sets int
}

func (d *discard) Get(context.Context, string, *clientv2.GetOptions) (*clientv2.Response, error) {
	return nil, clientv2.Error{Code: clientv2.ErrorCodeKeyNotFound}
}

func (d *discard) Set(context.Context, string, string, *clientv2.SetOptions) (*clientv2.Response, error) {
	d.mu.Lock()
	d.sets++
	d.mu.Unlock()
	return &clientv2.Response{}, nil
}

// A seed streams: the heap it needs does not grow with the number of
// objects. Measured as the highest live heap sampled while seeding 20 000
// and then 200 000 objects (a GC before each sample, so that only what the
// seed holds is counted), the manifest it returns included.
func TestSeedMemoryDoesNotGrowWithTheObjectCount(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 220 000 files")
	}
	peak := func(n int) uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base, high := ms.HeapAlloc, ms.HeapAlloc
		sample := func() {
			runtime.GC() // live heap only: garbage is not what we measure
			runtime.ReadMemStats(&ms)
			high = max(high, ms.HeapAlloc)
		}
		calls := 0
		keys := &discard{}
		m, err := seed.Run(context.Background(), keys, seed.Config{
			Docs: 2000, Objects: n, Nodes: seed.Nodes(2), Seed: 1, Layout: seed.Layout{Dir: scratch(t)},
			OnProgress: func(string, int64, int64) {
				if calls++; calls%10 == 0 {
					sample()
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		sample()
		if m.Total != n || keys.sets != 2000+2+n {
			t.Fatalf("%d objects, %d v2 writes", m.Total, keys.sets)
		}
		runtime.KeepAlive(m)
		return high - min(base, high)
	}
	small, large := peak(20_000), peak(200_000)
	t.Logf("live heap while seeding: %d KiB at 20k objects, %d KiB at 200k", small/1024, large/1024)
	// Ten times the objects may cost a little more (a bit per chock for
	// reachability), never ten times the memory.
	if large > 2*small+4<<20 {
		t.Fatalf("the seed's heap grew with the object count: %d KiB at 20k, %d KiB at 200k", small/1024, large/1024)
	}
}

// scratch is a temporary dir in memory when the machine has one: the
// files are not what is measured, and a disk makes the test slow.
func scratch(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "seed-memory-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}
