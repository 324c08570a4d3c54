package gc_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

const benchObjects = 5000

// benchTree is the benchmarks' installation. By default etcd runs without
// fsync (as in every test); ROKUP_BENCH_FSYNC=1 turns fsync on, as a real
// cluster runs, where every transaction costs a disk sync and batching
// matters most.
func benchTree(b *testing.B) *tree {
	if os.Getenv("ROKUP_BENCH_FSYNC") == "" {
		return newTree(b)
	}
	ports, err := embed.FreePorts(2)
	if err != nil {
		b.Fatal(err)
	}
	m, err := embed.Start(context.Background(), embed.Config{
		Name: "bench", DataDir: b.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	return newTreeOn(b, m)
}

// garbageTree writes n unreachable chocks stamped before the run.
func garbageTree(b *testing.B, tr *tree, n int) {
	b.Helper()
	for i := 0; i < n; i++ {
		tr.chock(uint64(i))
	}
	tr.epochUpdate()
}

// BenchmarkSweep is rok-gc collecting benchObjects garbage chocks: epochs
// read 128 per read-only transaction, deletions batched and pipelined.
func BenchmarkSweep(b *testing.B) {
	tr := benchTree(b)
	var objs int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		garbageTree(b, tr, benchObjects)
		b.StartTimer()
		r, err := gc.Run(context.Background(), tr.cli, tr.config(false))
		if err != nil || r.Deleted != benchObjects {
			b.Fatalf("%v %+v", err, r)
		}
		objs += r.Deleted
	}
	b.ReportMetric(float64(objs)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkNaiveSweep is the naive sweep the issue compares against: per
// object, one Get of its epoch and one guarded delete transaction.
func BenchmarkNaiveSweep(b *testing.B) {
	tr := benchTree(b)
	ctx := context.Background()
	fence := fencing.NewFence(tr.cli)
	var objs int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		garbageTree(b, tr, benchObjects)
		b.StartTimer()
		in, err := fencing.Register(ctx, tr.cli, tr.node)
		if err != nil {
			b.Fatal(err)
		}
		g, err := tr.cache.Advance(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < benchObjects; j++ {
			name := strconv.Itoa(j)
			e, ok, err := tr.cache.Get(ctx, libmap.ChocksIdx, tr.id(libmap.ChocksIdx, name))
			if err != nil || !ok || e.Epoch >= g {
				b.Fatalf("%v %v %+v", err, ok, e)
			}
			resp, err := tr.cli.Txn(ctx).If(fence.AbsentCmp(), in.Cmp(), tr.cache.Unchanged(e)).Then(tr.cache.OpDelete(e)).Commit()
			if err != nil || !resp.Succeeded {
				b.Fatal(err)
			}
			os.Remove(tr.layout.Path(libmap.ChocksIdx, name))
			objs++
		}
		in.Close(ctx)
	}
	b.ReportMetric(float64(objs)/b.Elapsed().Seconds(), "objects/s")
}
