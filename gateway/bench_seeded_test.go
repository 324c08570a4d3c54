package gateway_test

import (
	"context"
	"sync"
	"testing"

	"github.com/rokup/rokup/gateway"
	rokseed "github.com/rokup/rokup/seed"
)

var (
	seededOnce sync.Once
	seededE    *gateway.BenchEnv
)

// benchSeeded is a second store of BenchDocs() documents in rokup seed's
// layout (about one document per directory, as a Gateway's objects and
// versions are), under /rok/gw too, on its own member.
func benchSeeded(b *testing.B) *gateway.BenchEnv {
	seededOnce.Do(func() {
		dir, cli, kapi := gateway.BenchMember(b, "seeded")
		n := gateway.BenchDocs()
		if _, err := rokseed.Run(context.Background(), kapi, rokseed.Config{Docs: n, Objects: 100, ValueSize: 512, Nodes: rokseed.Nodes(1), Seed: 1, Layout: rokseed.Layout{Dir: dir + "/storage"}}); err != nil {
			b.Fatal(err)
		}
		seededE = gateway.NewBenchEnv(cli, kapi, n+1) // and the v2 ledger entry
	})
	if seededE == nil {
		b.Skip("seeded bench store failed")
	}
	return seededE
}

// BenchmarkMoveSeeded is BenchmarkMove on rokup seed's layout.
func BenchmarkMoveSeeded(b *testing.B) { gateway.BenchMove(b, benchSeeded(b)) }

// BenchmarkNaiveCopySeeded is BenchmarkNaiveCopy on the seeded layout, on
// its first 2000 documents (docs/s is what matters; listing not counted).
func BenchmarkNaiveCopySeeded(b *testing.B) { gateway.NaiveCopyFirst(b, benchSeeded(b), 2000) }
