package gateway

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

// exits are what the benchmarks' stores leave for the process's end, run
// last first.
var (
	exitsMu sync.Mutex
	exits   []func()
)

func atExit(f func()) {
	exitsMu.Lock()
	defer exitsMu.Unlock()
	exits = append(exits, f)
}

// TestMain runs the package's tests and benchmarks (the external
// gateway_test ones too: one binary), then stops the benchmarks' members
// and removes their data dirs, which outlive any one benchmark.
func TestMain(m *testing.M) {
	code := m.Run()
	exitsMu.Lock()
	for i := len(exits) - 1; i >= 0; i-- {
		exits[i]()
	}
	exitsMu.Unlock()
	os.Exit(code)
}

// benchDocs is the store size of the benchmarks (ROKUP_BENCH_DOCS).
func benchDocs() int {
	if n, err := strconv.Atoi(os.Getenv("ROKUP_BENCH_DOCS")); err == nil && n > 0 {
		return n
	}
	return 20000
}

var (
	benchOnce sync.Once
	benchE    *benchEnv
)

type benchEnv struct {
	cli  *clientv3.Client
	kapi clientv2.KeysAPI
	docs int
}

// benchMember starts a member for one store of the run, with fsync on as
// every production etcd runs (the naive copier pays one commit per
// document, the move one per transaction), and clients as the commands
// make them. The store outlives each benchmark's b (cleanups would stop
// it after the first round), so TestMain stops it and removes its data
// dir (hundreds of MiB) once every test and benchmark has run.
func benchMember(b *testing.B, name string) (dir string, cli *clientv3.Client, kapi clientv2.KeysAPI) {
	dir, err := os.MkdirTemp("", "gw-bench-"+name+"-")
	if err != nil {
		b.Fatal(err)
	}
	atExit(func() { os.RemoveAll(dir) })
	ports, err := embed.FreePorts(2)
	if err != nil {
		b.Fatal(err)
	}
	m, err := embed.Start(context.Background(), embed.Config{
		Name: "bench", DataDir: dir, NoFsync: os.Getenv("ROKUP_BENCH_NOFSYNC") != "",
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	if err != nil {
		b.Fatal(err)
	}
	atExit(m.Close)
	if cli, err = clientv3.New(clientv3.Config{Endpoints: m.Endpoints(), MaxCallSendMsgSize: 16 << 20, MaxCallRecvMsgSize: 64 << 20}); err != nil {
		b.Fatal(err)
	}
	c2, err := conn.V2(conn.Config{Endpoints: m.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	return dir, cli, conn.NewKeysAPI(c2)
}

// benchStore seeds benchDocs() documents of 512 bytes in 100 directories,
// once for every benchmark of the run.
func benchStore(b *testing.B) *benchEnv {
	benchOnce.Do(func() {
		_, cli, kapi := benchMember(b, "flat")
		n := benchDocs()
		seedFlat(b, kapi, n)
		benchE = &benchEnv{cli: cli, kapi: kapi, docs: n}
	})
	if benchE == nil {
		b.Skip("bench store failed")
	}
	return benchE
}

func seedFlat(b *testing.B, kapi clientv2.KeysAPI, n int) {
	val := strings.Repeat("v", 512)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				if _, err := kapi.Set(context.Background(), fmt.Sprintf("%s/docs/d%03d/doc-%06d", DefaultPrefix, i%100, i), val, nil); err != nil {
					panic(err)
				}
			}
		}(w)
	}
	wg.Wait()
}

func (e *benchEnv) clearV3(b *testing.B) {
	if _, err := e.cli.Delete(context.Background(), DefaultPrefix+"/", clientv3.WithPrefix()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMove measures the move of the whole store (copy and
// verification), docs/s reported.
func BenchmarkMove(b *testing.B) { benchMove(b, benchStore(b)) }

// BenchmarkCeiling is the raw ceiling: the same documents written as
// batched, create-guarded puts, with no reading at all.
func BenchmarkCeiling(b *testing.B) {
	e := benchStore(b)
	val := strings.Repeat("v", 512)
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e.clearV3(b)
		b.StartTimer()
		c0 := cpuTime()
		ceilingOnce(b, e, val)
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(e.docs*b.N)/b.Elapsed().Seconds(), "docs/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

func ceilingOnce(b *testing.B, e *benchEnv, val string) {
	w := batch.New(context.Background(), e.cli, batch.Config{})
	for j := 0; j < e.docs; j++ {
		k := fmt.Sprintf("%s/docs/d%03d/doc-%06d", DefaultPrefix, j%100, j)
		it := batch.Put(k, val)
		it.Cmps = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}
		if err := w.Add(it); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNaiveCopy is the baseline: list the documents, then one v2 get
// and one v3 put per document, in sequence.
func BenchmarkNaiveCopy(b *testing.B) {
	e := benchStore(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e.clearV3(b)
		b.StartTimer()
		keys := e.keys(b, e.docs)
		naiveCopy(b, e, keys)
		if len(keys) != e.docs {
			b.Fatalf("copied %d of %d", len(keys), e.docs)
		}
	}
	b.ReportMetric(float64(e.docs*b.N)/b.Elapsed().Seconds(), "docs/s")
}

// benchInFlight is MoveOptions.InFlight for the move benchmarks
// (ROKUP_BENCH_INFLIGHT; unset: the default), to try other settings.
func benchInFlight() int {
	n, _ := strconv.Atoi(os.Getenv("ROKUP_BENCH_INFLIGHT"))
	return n
}

// naiveCopy is the naive copier: one v2 get and one v3 put per document,
// in sequence.
func naiveCopy(b *testing.B, e *benchEnv, keys []string) {
	for _, k := range keys {
		resp, err := e.kapi.Get(context.Background(), k, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.cli.Put(context.Background(), k, resp.Node.Value); err != nil {
			b.Fatal(err)
		}
	}
}

// keys lists up to max of the store's document keys, as a naive copier
// would first.
func (e *benchEnv) keys(b *testing.B, max int) []string {
	var keys []string
	if err := conn.WalkV2(context.Background(), e.kapi, DefaultPrefix, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			if len(keys) < max {
				keys = append(keys, n.Key)
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return keys
}

// cpuTime is the CPU time this process (client and, in these benchmarks,
// the embedded etcd) has used: a measure of work that the load of a
// shared machine moves less than it moves wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchMove moves e's whole store (one pass that reads and copies, then
// the verification) b.N times and reports docs/s, CPU seconds per move,
// the last move's phases and its v2 reads.
func benchMove(b *testing.B, e *benchEnv) {
	b.ResetTimer() // the store's seeding is not the move's
	var rep MoveReport
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e.clearV3(b)
		b.StartTimer()
		c0 := cpuTime()
		var err error
		if rep, err = Move(context.Background(), e.cli, e.kapi, MoveOptions{InFlight: benchInFlight()}); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		if rep.Created != int64(e.docs) {
			b.Fatalf("created %d of %d", rep.Created, e.docs)
		}
	}
	b.ReportMetric(float64(e.docs*b.N)/b.Elapsed().Seconds(), "docs/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	for _, p := range []string{"read", "copy", "verify"} {
		b.ReportMetric(rep.PhaseSeconds[p], p+"-s")
	}
	b.ReportMetric(float64(rep.V2Reads.Reads), "v2-reads")
}

// naiveCopyFirst copies e's first n documents the naive way (listing not
// counted) b.N times and reports docs/s.
func naiveCopyFirst(b *testing.B, e *benchEnv, n int) {
	var copied int
	var took time.Duration
	for i := 0; i < b.N; i++ {
		e.clearV3(b)
		keys := e.keys(b, n)
		t0 := time.Now()
		naiveCopy(b, e, keys)
		took += time.Since(t0)
		copied += len(keys)
	}
	b.ReportMetric(float64(copied)/took.Seconds(), "docs/s")
}
