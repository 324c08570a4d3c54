package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// The inner loops of the real paths, for `go test -bench . ./bench`: the
// batch writer that both the move and the stamping write through, and the
// storage scanner that both the epoch update and the GC walk with. They
// report items/s; nothing here asserts a time.

func benchmarkWriter(b *testing.B, valLen int, cfg batch.Config) {
	m := embed.NewTestMember(b)
	cli := embed.NewTestClient(b, m.Endpoints())
	ctx := context.Background()
	value := strings.Repeat("v", valLen)
	b.ResetTimer()
	w := batch.New(ctx, cli, cfg)
	for i := 0; i < b.N; i++ {
		if err := w.Add(batch.Put(fmt.Sprintf("/bench/%012d", i), value)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkWriterEpochKeys writes epoch-sized keys (1-byte values).
func BenchmarkWriterEpochKeys(b *testing.B) { benchmarkWriter(b, 1, batch.Config{}) }

// BenchmarkWriterGatewayDocs writes 512-byte Gateway-sized documents.
func BenchmarkWriterGatewayDocs(b *testing.B) { benchmarkWriter(b, 512, batch.Config{}) }

// BenchmarkWriterGuarded adds a shared compare to every transaction, as
// the stamper (epoch unchanged) and the GC (fence absent) do.
func BenchmarkWriterGuarded(b *testing.B) {
	fenceAbsent := clientv3.Compare(clientv3.CreateRevision("/bench/fence"), "=", 0)
	benchmarkWriter(b, 1, batch.Config{Cmps: []clientv3.Cmp{fenceAbsent}})
}

// BenchmarkScan walks a seeded chocks-ca fan-out, classifying every entry
// as the epoch update does.
func BenchmarkScan(b *testing.B) {
	const n = 20000
	l := seed.Layout{Dir: b.TempDir()}
	ctx := context.Background()
	kapi := embed.NewTestV2(b, embed.NewTestMember(b).Endpoints())
	if _, err := seed.Run(ctx, kapi, seed.Config{Objects: n, Nodes: seed.Nodes(1), Layout: l}); err != nil {
		b.Fatal(err)
	}
	cl := l.Node("")
	b.ResetTimer()
	var objs int64
	for i := 0; i < b.N; i++ {
		err := cl.Scan(ctx, libmap.ChocksCA, func(e composer.Entry) error {
			if e.Valid() {
				objs++
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(objs)/b.Elapsed().Seconds(), "objects/s")
}
