package composer

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rokup/rokup/libmap"
)

// benchTree writes n objects of each scope kind the way a node holds them:
// a fifth maps, each naming 1–6 chocks, the rest chocks.
func benchTree(b *testing.B, n int) Layout {
	b.Helper()
	dir := b.TempDir()
	l := Layout{Nodelocal: filepath.Join(dir, "nodelocal"), Local: filepath.Join(dir, "local")}
	r := rand.New(rand.NewSource(1))
	maps, chocks := n/5, n-n/5
	put := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var ca []string
	for i := 0; i < chocks; i++ {
		put(l.Path(libmap.ChocksIdx, fmt.Sprint(i)), "chock")
		h := hash(fmt.Sprint(i))
		ca = append(ca, h)
		put(l.Path(libmap.ChocksCA, h), "chock")
	}
	for j := 0; j < maps; j++ {
		var idx, cas strings.Builder
		for k := 1 + r.Intn(6); k > 0; k-- {
			c := r.Intn(chocks)
			fmt.Fprintf(&idx, "chocks-idx/%d\n", c)
			fmt.Fprintf(&cas, "chocks-ca/%s\n", ca[c])
		}
		u := hash(fmt.Sprint("map", j))
		put(l.Path(libmap.MapsUUID, u[:8]+"-"+u[8:12]+"-"+u[12:16]+"-"+u[16:20]+"-"+u[20:32]), idx.String())
		put(l.Path(libmap.MapsCA, hash(fmt.Sprint("ca map", j))), cas.String())
	}
	return l
}

// BenchmarkScan classifies every scope of a tree as the epoch update does
// (maps read, their chocks checked); it reports objects/s per scope.
func BenchmarkScan(b *testing.B) {
	n := 50000
	if os.Getenv("ROKUP_LARGE") != "" {
		n = 500000
	}
	l := benchTree(b, n)
	for _, sc := range libmap.Scopes() {
		for _, w := range []int{1, DefaultWorkers()} {
			b.Run(fmt.Sprintf("%s/workers=%d", sc, w), func(b *testing.B) {
				var objs int64
				for i := 0; i < b.N; i++ {
					err := l.Scan(context.Background(), sc, func(e Entry) error {
						if !e.Valid() {
							return fmt.Errorf("%s: %s", e.Path, e.Bad)
						}
						objs++
						return nil
					}, WithWorkers(w))
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(objs)/b.Elapsed().Seconds(), "objects/s")
			})
		}
	}
}

// BenchmarkValidName is the per-entry name check of each scope.
func BenchmarkValidName(b *testing.B) {
	names := map[libmap.Scope]string{
		libmap.MapsUUID:  "0f8fad5b-d9cb-469f-a165-70867728950e",
		libmap.ChocksIdx: "1234567",
		libmap.ChocksCA:  hash("x"),
	}
	for sc, name := range names {
		b.Run(string(sc), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if !ValidName(sc, name) {
					b.Fatal(name)
				}
			}
		})
	}
}
