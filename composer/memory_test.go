package composer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rokup/rokup/libmap"
)

// A scan streams: the heap it needs does not grow with the number of
// objects in the folder. Measured as the highest live heap sampled while
// scanning 5 000 and then 50 000 chocks in one flat folder (the shape
// that would hurt most: one folder, read in chunks), after a GC before
// each so that only what the scan holds is counted.
func TestScanMemoryDoesNotGrowWithTheObjectCount(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 55 000 files")
	}
	peak := func(n int) uint64 {
		root := t.TempDir()
		l := Layout{Nodelocal: root}
		dir := l.Dir(libmap.ChocksIdx)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base, high := ms.HeapAlloc, ms.HeapAlloc
		seen := 0
		err := l.Scan(context.Background(), libmap.ChocksIdx, func(e Entry) error {
			if seen++; seen%1000 == 0 {
				runtime.GC() // live heap only: garbage is not what we measure
				runtime.ReadMemStats(&ms)
				high = max(high, ms.HeapAlloc)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen != n {
			t.Fatalf("scanned %d of %d", seen, n)
		}
		return high - min(base, high)
	}
	small, large := peak(5000), peak(50000)
	t.Logf("live heap during the scan: %d KiB at 5k objects, %d KiB at 50k", small/1024, large/1024)
	// Ten times the objects may cost a little more (a bigger directory
	// buffer), never ten times the memory.
	if large > 2*small+4<<20 {
		t.Fatalf("the scan's heap grew with the object count: %d KiB at 5k, %d KiB at 50k", small/1024, large/1024)
	}
}
