package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

// TestTinyRunReportsEveryPathWithItsRatios runs the whole bench on a tiny
// installation and checks what a reader of the table or the JSON relies
// on: every path, the seeded counts, the sample flags, ratios against the
// right path, and the run's own checks. No timing is asserted.
func TestTinyRunReportsEveryPathWithItsRatios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	// The figures are handed on before the seeded installation is removed
	// (minutes at 10M objects): the temp dir is still there then.
	var measuredPaths int
	var dirsThen []string
	measured := func(r *Result, _ error) {
		measuredPaths = len(r.Paths)
		dirsThen, _ = filepath.Glob(filepath.Join(dir, "rokup-bench-*"))
	}
	res, err := Run(ctx, Config{Docs: 200, Objects: 300, Nodes: 2, NaiveSample: 50, TuneItems: 100, Dir: dir, Measured: measured})
	if err != nil {
		t.Fatal(err)
	}
	dirsNow, _ := filepath.Glob(filepath.Join(dir, "rokup-bench-*"))
	if measuredPaths != len(order) || len(dirsThen) != 1 || len(dirsNow) != 0 {
		t.Errorf("Measured got %d paths with temp dirs %v; after Run: %v (want every path, the temp dir then, none after)", measuredPaths, dirsThen, dirsNow)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		PeakRSS *float64 `json:"peak_rss_mib"`
		Cores   int      `json:"cores"`
		Paths   []map[string]any
		Checks  []string
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.PeakRSS == nil || *doc.PeakRSS <= 0 || doc.Cores < 1 {
		t.Errorf("peak_rss_mib %v, cores %d", doc.PeakRSS, doc.Cores)
	}
	var names []string
	for _, p := range doc.Paths {
		names = append(names, p["name"].(string))
		for _, f := range []string{"items", "seconds", "per_s", "vs_naive", "vs_ceiling", "peak_rss_mib"} {
			if _, ok := p[f]; !ok {
				t.Errorf("path %s has no %q: %v", p["name"], f, p)
			}
		}
	}
	if got, want := strings.Join(names, ","), strings.Join(order, ","); got != want {
		t.Fatalf("paths %s, want %s", got, want)
	}
	by := map[string]Path{}
	for _, p := range res.Paths {
		by[p.Name] = p
		if p.Items <= 0 || p.Seconds <= 0 || p.PerS <= 0 || p.PeakRSSMiB <= 0 {
			t.Errorf("%s: items %d, seconds %g, per_s %g, peak %g", p.Name, p.Items, p.Seconds, p.PerS, p.PeakRSSMiB)
		}
	}
	// Each ceiling is the fastest of its full runs, which its note lists.
	for _, name := range []string{CeilingGW, CeilingStmp} {
		p := by[name]
		_, list, ok := strings.Cut(p.Note, fmt.Sprintf("then the fastest of %d full runs (", ceilingRuns))
		list, _, _ = strings.Cut(list, ")")
		var rates []float64
		for _, r := range strings.Split(list, ", ") {
			if v, err := strconv.ParseFloat(strings.TrimSuffix(r, "/s"), 64); err == nil {
				rates = append(rates, v)
			}
		}
		if !ok || len(rates) != ceilingRuns || math.Abs(slices.Max(rates)-p.PerS) > 1 {
			t.Errorf("%s at %.0f/s, not the fastest of %d full runs: %q", name, p.PerS, ceilingRuns, p.Note)
		}
	}
	// The seed writes exactly the documents and objects asked for. The
	// move also carries the hidden v2-era ledger entry; the GC's mark also
	// looks at each node's planted unparsable map (by name it is a valid
	// maps-uuid, which is why that node's chocks-idx are then kept), and
	// the epoch update, which does not read maps, stamps it.
	for name, want := range map[string]int64{CeilingGW: 200, NaiveGW: 200, GWMigrate: 201, CeilingStmp: 300, NaiveStamp: 300, EpochUpdate: 302, GC: 302, NaiveSweep: 302} {
		if got := by[name].Items; got != want {
			t.Errorf("%s: %d items, want %d", name, got, want)
		}
	}
	for _, name := range []string{NaiveGW, NaiveStamp, NaiveSweep} {
		if p := by[name]; !p.Sampled || p.Sample != 50 || p.SampleOf < 50 || p.SampleOf > p.Items {
			t.Errorf("%s: sampled %v, sample %d of %d; want 50 of the items", name, p.Sampled, p.Sample, p.SampleOf)
		}
	}
	for _, name := range []string{CeilingGW, GWMigrate, EpochUpdate, GC} {
		if by[name].Sampled {
			t.Errorf("%s is marked sampled", name)
		}
	}
	assertRatio(t, by[GWMigrate].VsNaive, by[GWMigrate].PerS/by[NaiveGW].PerS)
	assertRatio(t, by[GWMigrate].VsCeiling, by[GWMigrate].PerS/by[CeilingGW].PerS)
	assertRatio(t, by[EpochUpdate].VsNaive, by[EpochUpdate].PerS/by[NaiveStamp].PerS)
	assertRatio(t, by[EpochUpdate].VsCeiling, by[EpochUpdate].PerS/by[CeilingStmp].PerS)
	assertRatio(t, by[GC].VsNaive, by[GC].PerS/by[NaiveSweep].PerS)
	if by[GC].VsCeiling != nil || by[CeilingGW].VsNaive != nil || by[CeilingGW].VsCeiling != nil {
		t.Errorf("ratios where there is nothing to compare: gc vs ceiling %v, ceiling vs naive %v", by[GC].VsCeiling, by[CeilingGW].VsNaive)
	}
	// The epoch update's rate by scope adds up to its whole.
	var scoped int64
	for _, sc := range by[EpochUpdate].Scopes {
		scoped += sc.Objects
		if sc.Objects > 0 && (sc.Seconds <= 0 || sc.PerS != float64(sc.Objects)/sc.Seconds) {
			t.Errorf("epoch-update scope %+v: no seconds, or a rate that is not objects over seconds", sc)
		}
	}
	if len(by[EpochUpdate].Scopes) != 4 || scoped != by[EpochUpdate].Items {
		t.Errorf("epoch-update scopes %+v: want the four, adding up to %d objects", by[EpochUpdate].Scopes, by[EpochUpdate].Items)
	}
	if by[CeilingGW].Setting == "" || by[CeilingStmp].Setting == "" || by[CeilingUnlnk].Setting == "" {
		t.Error("the ceilings do not say which setting won")
	}
	// The removal ceiling removes as many files as gc collected (the
	// seed's garbage: under the probe's bound at this size), and gc's note
	// says what that ceiling implies.
	if u := by[CeilingUnlnk]; u.Items >= by[GC].Items || !strings.Contains(by[GC].Note, fmt.Sprintf("its %d files alone take", u.Items)) {
		t.Errorf("ceiling unlink removed %d files; gc note %q", u.Items, by[GC].Note)
	}
	if len(doc.Checks) != 3 {
		t.Errorf("checks %q, want the move, the update and the gc", doc.Checks)
	}
	for _, c := range doc.Checks {
		if strings.Contains(c, "NOT") || strings.Contains(c, "MISMATCH") {
			t.Errorf("check failed: %s", c)
		}
	}

	// Every path says what processor time it took: the member runs in
	// this process here, so etcd's is inside rokup's and not apart.
	for _, p := range res.Paths {
		if p.CPU == nil || p.CPU.User < 0 || p.CPU.Sys < 0 || p.CPU.Etcd != nil {
			t.Errorf("%s: cpu %+v, want rokup's alone", p.Name, p.CPU)
		}
		// The hypervisor's share, on Linux: some of the time of the
		// machine's cores, or none.
		if p.CPU != nil && runtime.GOOS == "linux" {
			if st := p.CPU.Steal; st == nil || *st < 0 || *st > p.Seconds*float64(res.Cores)+0.02 {
				t.Errorf("%s: steal %v over %.2fs on %d cores", p.Name, st, p.Seconds, res.Cores)
			}
		}
	}
	for _, name := range []string{GWMigrate, EpochUpdate, GC} {
		if c := by[name].CPU; c == nil || c.Total() <= 0 || c.Busy <= 0 {
			t.Errorf("%s: cpu %+v: the real paths' work took no processor time", name, c)
		}
	}

	var text bytes.Buffer
	res.Text(&text)
	for _, want := range []string{"× naive", "% of ceiling", "peak MiB", "naive gw copy *", "50 of 300 measured, time extrapolated", "fsync on", "CPU s", "busy"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, text.String())
		}
	}
}

func assertRatio(t *testing.T, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Errorf("ratio missing, want %.3f", want)
		return
	}
	if d := *got - want; d > 0.001 || d < -0.001 {
		t.Errorf("ratio %.3f, want %.3f", *got, want)
	}
}

// TestFinishDerivesRatesAndRatios checks the arithmetic on made-up paths.
func TestFinishDerivesRatesAndRatios(t *testing.T) {
	res := &Result{SeedRSSMiB: 40, Paths: []Path{
		{Name: GC, Items: 1000, Seconds: 2, PeakRSSMiB: 90},
		{Name: GWMigrate, Items: 1000, Seconds: 4, PeakRSSMiB: 120, Note: "moved"},
		{Name: NaiveGW, Items: 1000, Seconds: 100, Sampled: true, Sample: 10},
		{Name: CeilingGW, Items: 1000, Seconds: 2.5},
		{Name: NaiveSweep, Items: 1000, Seconds: 50},
	}}
	finish(res)
	var names []string
	for _, p := range res.Paths {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "ceiling gw,naive gw copy,gw migrate,naive sweep,gc" {
		t.Fatalf("order %s", got)
	}
	mig, gc := res.Paths[2], res.Paths[4]
	if mig.PerS != 250 {
		t.Errorf("gw migrate per_s %g, want 250", mig.PerS)
	}
	if mig.Note != "moved" {
		t.Errorf("gw migrate note %q: without its CPU there is no bound to tell", mig.Note)
	}
	assertRatio(t, mig.VsNaive, 25)      // 250/s against 10/s
	assertRatio(t, mig.VsCeiling, 0.625) // 250/s against 400/s
	assertRatio(t, res.Paths[1].VsCeiling, 0.025)
	assertRatio(t, gc.VsNaive, 25) // 500/s against 20/s
	if gc.VsCeiling != nil || res.Paths[1].VsNaive != nil {
		t.Error("a ratio with nothing to compare with")
	}
	if res.PeakRSSMiB != 120 {
		t.Errorf("peak %g, want the highest path's 120", res.PeakRSSMiB)
	}
}

// TestCPUBoundIsTheCPUsArithmetic checks the note on a made-up move.
func TestCPUBoundIsTheCPUsArithmetic(t *testing.T) {
	// 1.5 + 0.5 + 2 = 4 CPU-s on 2 cores take at least 2 s: 1000 items in
	// 2 s at most, 500/s, which is 125 % of the ceiling's 400/s.
	etcd := 2.0
	res := &Result{Cores: 2, Paths: []Path{
		{Name: GWMigrate, Items: 1000, Seconds: 4, Note: "moved", CPU: &CPU{User: 1.5, Sys: 0.5, Etcd: &etcd}},
		{Name: CeilingGW, Items: 1000, Seconds: 2.5},
	}}
	finish(res)
	want := "moved; at its CPU (4.0 CPU-s: rokup 1.5 user + 0.5 system, etcd 2.0) it takes at least 2.00s on 2 cores, so it could not pass 500/s, 125 % of the ceiling"
	if got := res.Paths[1].Note; got != want {
		t.Errorf("gw migrate note\n%s\nwant\n%s", got, want)
	}
}

// TestGCBoundIsTheRemovalCeilingsArithmetic checks the note on made-up
// paths: 4000 files at 2000 files/s take 2 s, a fifth of gc's 10 s, and
// no collector can then be more than 150/2 = 75× a naive sweep of 150 s.
func TestGCBoundIsTheRemovalCeilingsArithmetic(t *testing.T) {
	r := &runner{res: &Result{Paths: []Path{
		{Name: GC, Items: 10000, Seconds: 10, Note: "gc"},
		{Name: NaiveSweep, Items: 10000, Seconds: 150},
		{Name: CeilingUnlnk, Items: 1000, Seconds: 0.5},
	}}, collected: 4000}
	r.gcBound()
	want := "gc; its 4000 files alone take 2.0s at this disk's removal ceiling (2000 files/s): 20 % of its time, and no collector here can be more than 75.0× the naive sweep"
	if got := r.res.Paths[0].Note; got != want {
		t.Errorf("note\n%s\nwant\n%s", got, want)
	}

	// With the processor time measured: 3 + 5 + 4 = 12 CPU-s take at
	// least 6 s on 2 cores, so 150/6 = 25× at most; the probe's 0.05 s of
	// system time over 1000 files is 50 µs a file, 0.2 CPU-s for 4000.
	etcd := 4.0
	r.res.Cores = 2
	r.res.Paths[0].Note = "gc"
	r.res.Paths[0].CPU = &CPU{User: 3, Sys: 5, Etcd: &etcd}
	r.res.Paths[2].CPU = &CPU{User: 0.01, Sys: 0.05}
	r.gcBound()
	want += "; it used 12.0 CPU-s (rokup 3.0 user + 5.0 system, etcd 4.0), at least 6.0s on 2 cores, so at its CPU no overlap could take it past 25.0× the naive sweep; a removal alone costs 50 µs of kernel time here (0.2 CPU-s for its files)"
	if got := r.res.Paths[0].Note; got != want {
		t.Errorf("note\n%s\nwant\n%s", got, want)
	}
}

func TestConfigRejectsNothingToMeasure(t *testing.T) {
	for _, c := range []Config{{}, {Docs: -1, Objects: 10}, {Docs: 10, ValueSize: -5}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// gate holds each node's work until every node's has begun. Work done one
// node after the other never gets past it; the deadline only turns such a
// hang into a failure (nothing here is timed).
type gate struct {
	nodes    int
	all      chan struct{}
	deadline context.Context

	mu    sync.Mutex
	begun map[string]bool
	stuck bool // some node waited in vain
}

func newGate(t *testing.T, nodes int) *gate {
	deadline, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &gate{nodes: nodes, all: make(chan struct{}), deadline: deadline, begun: map[string]bool{}}
}

// enter records node's beginning and waits for every node's.
func (g *gate) enter(node string) {
	g.mu.Lock()
	if g.begun[node] = true; len(g.begun) == g.nodes {
		close(g.all)
	}
	g.mu.Unlock()
	select {
	case <-g.all:
	case <-g.deadline.Done():
		g.mu.Lock()
		g.stuck = true
		g.mu.Unlock()
	}
}

// check fails t when some node's work waited in vain for the others.
func (g *gate) check(t *testing.T, what string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stuck {
		t.Fatalf("a node's %s waited in vain for the others to begin: the nodes went one after the other (nodes begun: %v)", what, g.begun)
	}
}

// runChecked runs a small bench of nodes and fails t on a failed check.
func runChecked(t *testing.T, nodes int) *Result {
	t.Helper()
	res, err := Run(context.Background(), Config{Objects: 300, Nodes: nodes, NaiveSample: 20, TuneItems: 100, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Checks {
		if strings.Contains(c, "MISMATCH") || strings.Contains(c, "NOT") {
			t.Errorf("check failed: %s", c)
		}
	}
	return res
}

// The bench stamps every node's nodelocal scopes at once, as the sidecars
// of a cluster do.
func TestEpochUpdateStampsTheNodesAtOnce(t *testing.T) {
	const nodes = 3
	g := newGate(t, nodes)
	updateScopes = func(ctx context.Context, cache *libmap.Cache, l composer.Layout, scopes []libmap.Scope, cfg composer.UpdateConfig) ([]composer.Report, error) {
		if scopes[0].Nodelocal() {
			g.enter(cfg.Node)
		}
		return composer.UpdateScopes(ctx, cache, l, scopes, cfg)
	}
	t.Cleanup(func() { updateScopes = composer.UpdateScopes })
	runChecked(t, nodes)
	g.check(t, "epoch update")
}

// The bench runs every node's rok-gc at once, as the nodes of a cluster
// do, then the CA sweep, which must not begin before they all ended.
func TestGCRunsTheNodesAtOnce(t *testing.T) {
	const nodes = 3
	g := newGate(t, nodes)
	var mu sync.Mutex
	ended, early := 0, false
	gcRun = func(ctx context.Context, cli *clientv3.Client, cfg gc.Config) (*gc.Report, error) {
		if cfg.CA {
			mu.Lock()
			early = ended < nodes
			mu.Unlock()
			return gc.Run(ctx, cli, cfg)
		}
		g.enter(cfg.Node)
		rep, err := gc.Run(ctx, cli, cfg)
		mu.Lock()
		ended++
		mu.Unlock()
		return rep, err
	}
	t.Cleanup(func() { gcRun = gc.Run })
	res := runChecked(t, nodes)
	g.check(t, "gc")
	if early {
		t.Fatal("the CA sweep began before every node's gc ended")
	}
	if !slices.ContainsFunc(res.Checks, func(c string) bool {
		return strings.HasPrefix(c, "gc: one run after the epoch update collected all eligible garbage")
	}) {
		t.Errorf("no gc check among %q", res.Checks)
	}
}
