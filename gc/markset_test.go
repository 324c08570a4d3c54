package gc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

func TestMarkSetHoldsWhatWasAddedOnly(t *testing.T) {
	s := newIdxSet()
	want := map[uint64]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5*minTail; i++ { // several merges, with duplicates
		k := r.Uint64N(1 << 20)
		s.add(k)
		want[k] = true
	}
	s.seal()
	if s.len() != len(want) {
		t.Fatalf("%d keys, %d distinct added", s.len(), len(want))
	}
	for k := uint64(0); k < 1<<20; k++ {
		if s.has(k) != want[k] {
			t.Fatalf("has(%d) = %v, added %v", k, s.has(k), want[k])
		}
	}
	c := newChockSet()
	a, b := sha("a"), sha("b")
	c.add(keyOf(a))
	c.seal()
	if !c.has(keyOf(a)) || c.has(keyOf(b)) {
		t.Fatal("the chock set does not hold what was added only")
	}
	// Another name with the same first half looks reached: a collision
	// keeps an object, it never deletes one.
	if !c.has(keyOf(a[:32] + strings.Repeat("0", 32))) {
		t.Fatal("a chock key is not the first half of its hash")
	}
}

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// The mark's memory grows by the size of a key per object it reaches:
// measured as the live heap the mark holds after marking 20 000 and then
// 200 000 objects (one map in ten, each listing nine chocks of its own:
// the shape where the set is largest), for a node's mark and for the CA
// mark. The bound is a third of gc's budget of 64 MiB per million objects;
// a Go map of the same keys costs 2 to 6 times the key.
func TestMarkMemoryGrowsByAKeyPerObject(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 44 000 map files")
	}
	const perMillion = 24 << 20
	for _, ca := range []bool{false, true} {
		held := func(objects int) uint64 {
			maps := objects / 10
			l := composer.Layout{Nodelocal: scratch(t), Local: scratch(t)}
			g := &run{r: &Report{}, incomplete: map[libmap.Scope]string{}, cfg: Config{Layout: l}}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			before := ms.HeapAlloc
			if ca {
				writeCAMaps(t, l, maps)
				g.caMaps, g.caChocks = newMapSet(), newChockSet()
				for j := 0; j < maps; j++ {
					g.version(fmt.Sprint("v", j), fmt.Appendf(nil, `{"map": "maps-ca/%s"}`, sha(mapCA(j))))
				}
				g.markCAMaps()
				if g.caChocks.len() != 9*maps || g.caMaps.len() != maps {
					t.Fatalf("%d maps and %d chocks marked, want %d and %d", g.caMaps.len(), g.caChocks.len(), maps, 9*maps)
				}
			} else {
				writeUUIDMaps(t, l, maps)
				if err := g.markNode(context.Background()); err != nil {
					t.Fatal(err)
				}
				if g.idxReach.len() != 9*maps {
					t.Fatalf("%d chocks marked, want %d", g.idxReach.len(), 9*maps)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&ms)
			runtime.KeepAlive(g)
			return ms.HeapAlloc - min(before, ms.HeapAlloc)
		}
		small, large := held(20_000), held(200_000)
		growth := float64(large-min(small, large)) / 180_000 * 1e6
		t.Logf("CA %v: the mark holds %d KiB at 20k objects, %d KiB at 200k: %.1f MiB per million", ca, small/1024, large/1024, growth/(1<<20))
		if growth > perMillion {
			t.Fatalf("CA %v: the mark's heap grows by %.1f MiB per million objects, more than %d", ca, growth/(1<<20), perMillion>>20)
		}
	}
}

func mapCA(j int) string {
	var b strings.Builder
	for k := 0; k < 9; k++ {
		fmt.Fprintf(&b, "chocks-ca/%s\n", sha(fmt.Sprint(j, "/", k)))
	}
	return b.String()
}

func writeCAMaps(t *testing.T, l composer.Layout, n int) {
	for j := 0; j < n; j++ {
		content := mapCA(j)
		p := l.Path(libmap.MapsCA, sha(content))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func writeUUIDMaps(t *testing.T, l composer.Layout, n int) {
	dir := l.Dir(libmap.MapsUUID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for j := 0; j < n; j++ {
		var b strings.Builder
		for k := 0; k < 9; k++ {
			fmt.Fprintf(&b, "chocks-idx/%d\n", 9*j+k)
		}
		name := fmt.Sprintf("%08x-0000-4000-8000-000000000000", j)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scratch is a temporary dir in memory when the machine has one: the
// files are not what is measured, and a disk makes the test slow.
func scratch(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "gc-mark-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}
