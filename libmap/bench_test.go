package libmap_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/libmap"
)

// benchMember is a member that fsyncs, as a real one does: batching is
// worth most where each commit costs a disk sync.
func benchMember(b *testing.B) *clientv3.Client {
	b.Helper()
	ports, err := embed.FreePorts(2)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := embed.Start(ctx, embed.Config{
		DataDir:   b.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	return embed.NewTestClient(b, m.Endpoints())
}

func perSecond(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "objects/s")
}

// BenchmarkStamp compares, on the same etcd, the naive loop (one Put per
// object, in sequence) with the Stamper on fresh objects and on a re-run
// over objects already stamped. Run with:
//
//	go test -run - -bench Stamp -benchtime 20000x ./libmap/
func BenchmarkStamp(b *testing.B) {
	cli := benchMember(b)
	ctx := context.Background()
	cache := libmap.New(cli)
	if _, err := cache.Current(ctx); err != nil {
		b.Fatal(err)
	}
	run := 0
	stamp := func(b *testing.B, node string, n int) libmap.StampStats {
		s, err := cache.NewStamper(ctx, libmap.ChocksIdx, node, libmap.StampConfig{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := s.Add(fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}
		st, err := s.Close()
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	b.Run("naive", func(b *testing.B) {
		run++
		for i := 0; i < b.N; i++ {
			if _, err := cli.Put(ctx, fmt.Sprintf("/epochs/chocks-idx/naive-%d/%d", run, i), "1"); err != nil {
				b.Fatal(err)
			}
		}
		perSecond(b, b.N)
	})
	b.Run("stamper", func(b *testing.B) {
		run++
		st := stamp(b, fmt.Sprintf("fresh-%d", run), b.N)
		if st.Stamped != int64(b.N) {
			b.Fatalf("stamped %d of %d", st.Stamped, b.N)
		}
		perSecond(b, b.N)
	})
	b.Run("stamper-rerun", func(b *testing.B) {
		run++
		node := fmt.Sprintf("rerun-%d", run)
		b.StopTimer()
		stamp(b, node, b.N)
		b.StartTimer()
		st := stamp(b, node, b.N)
		if st.AlreadyStamped != int64(b.N) {
			b.Fatalf("re-run found %d of %d stamped", st.AlreadyStamped, b.N)
		}
		perSecond(b, b.N)
	})
}
