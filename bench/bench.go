package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/rokup/rokup/conn"
)

// Defaults of a Config.
const (
	DefaultDocs        = 20000
	DefaultObjects     = 50000
	DefaultValueSize   = 512
	DefaultNodes       = 3
	DefaultNaiveSample = 2000
	// DefaultTuneItems bounds the keys each ceiling setting is tried on
	// before the best one runs at full size.
	DefaultTuneItems = 20000
)

// Path names, as the table and the JSON print them.
const (
	CeilingGW   = "ceiling gw"
	NaiveGW     = "naive gw copy"
	GWMigrate   = "gw migrate"
	CeilingStmp = "ceiling stamp"
	NaiveStamp  = "naive stamp"
	EpochUpdate = "epoch-update"
	NaiveSweep  = "naive sweep"
	GC          = "gc"
	// CeilingUnlnk is how fast the storage's file system removes files
	// like those gc collected: what bounds a sweep on a disk that discards.
	CeilingUnlnk = "ceiling unlink"
)

// ErrBadConfig is returned for sizes a run cannot use.
var ErrBadConfig = errors.New("bench: bad configuration")

// Config sizes one run.
type Config struct {
	Docs      int // Gateway documents seeded in v2
	Objects   int // valid maps and chocks seeded on storage
	ValueSize int // bytes of a plain Gateway document
	Nodes     int // nodes whose nodelocal storage is seeded
	// NaiveSample is how many documents or objects the naive paths really
	// process; their time is extrapolated to the full size.
	NaiveSample int
	// TuneItems is how many keys each ceiling setting is tried on.
	TuneItems int

	// Etcd, when it names endpoints, is an existing cluster: the run works
	// under a scratch prefix there and removes it afterwards. Otherwise an
	// embedded member (fsync on) runs in a temp dir.
	Etcd *conn.Config
	// MemberCommand, when set, runs the embedded member in a child
	// process: the command (with ServeMember behind it) gets --data-dir,
	// --client-url and --peer-url appended. Otherwise it runs in this
	// process, and the memory figures include etcd's.
	MemberCommand []string
	// Dir is where the temp dir goes (the embedded member's data and the
	// seeded storage); default the system's temp dir.
	Dir string

	// Log gets one line per stage; Progress the progress of long stages.
	Log      func(string)
	Progress func(stage string, done, total int64)
	// Measured, if set, gets the result and the run's error once the
	// last path ran, before the temp dir goes: removing the seeded
	// storage takes minutes at ten million objects, and the figures
	// need not wait for it.
	Measured func(*Result, error)
}

func (c *Config) fill() error {
	if c.Docs < 0 || c.Objects < 0 || c.ValueSize < 0 || c.Nodes < 0 || c.NaiveSample < 0 || c.TuneItems < 0 {
		return fmt.Errorf("%w: sizes must not be negative", ErrBadConfig)
	}
	if c.ValueSize == 0 {
		c.ValueSize = DefaultValueSize
	}
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	if c.NaiveSample == 0 {
		c.NaiveSample = DefaultNaiveSample
	}
	if c.TuneItems == 0 {
		c.TuneItems = DefaultTuneItems
	}
	if c.Docs == 0 && c.Objects == 0 {
		return fmt.Errorf("%w: nothing to measure (--docs and --objects are both 0)", ErrBadConfig)
	}
	if c.Log == nil {
		c.Log = func(string) {}
	}
	if c.Progress == nil {
		c.Progress = func(string, int64, int64) {}
	}
	return nil
}

// Result is one run: the JSON of docs/design.md#performance.
type Result struct {
	PeakRSSMiB float64 `json:"peak_rss_mib"` // the process, seeding included
	Cores      int     `json:"cores"`
	GoMaxProcs int     `json:"gomaxprocs"`
	Etcd       string  `json:"etcd"` // what the run measured against
	Fsync      string  `json:"fsync"`
	Docs       int     `json:"docs"`
	Objects    int     `json:"objects"`
	ValueSize  int     `json:"value_size"`
	Nodes      int     `json:"nodes"`
	// LoadAvg is the 1-minute load average before and after the run: on
	// a machine shared with other work the rates are lower than they can be.
	LoadAvg    [2]float64 `json:"load_avg"`
	SeedSecs   float64    `json:"seed_seconds"`
	SeedRSSMiB float64    `json:"seed_peak_rss_mib"`
	// SeedV2EpochKeys is the v2 epoch cache seeded: one key per object up
	// to seed.DefaultV2EpochMax objects, a sample above (SeedNote says so).
	SeedV2EpochKeys int    `json:"seed_v2_epoch_keys"`
	SeedNote        string `json:"seed_note,omitempty"`
	Paths           []Path `json:"paths"`
	// Checks are what the run verified about the real paths (every
	// document moved, every object stamped, all garbage collected).
	Checks []string `json:"checks"`
}

// Path is one measured path.
type Path struct {
	Name    string  `json:"name"`
	Items   int64   `json:"items"`
	Seconds float64 `json:"seconds"`
	PerS    float64 `json:"per_s"`
	// VsNaive is how many times faster than the naive path for the same
	// work; VsCeiling the share of the ceiling's rate (0.8 = 80 %). Null
	// where there is nothing to compare with.
	VsNaive      *float64 `json:"vs_naive"`
	VsCeiling    *float64 `json:"vs_ceiling"`
	PeakRSSMiB   float64  `json:"peak_rss_mib"`
	RSSGrowthMiB float64  `json:"rss_growth_mib"`
	HeapPeakMiB  float64  `json:"heap_peak_mib"`
	// Sampled is set when only Sample items were processed and Seconds is
	// extrapolated from them.
	Sampled bool  `json:"sampled"`
	Sample  int64 `json:"sample,omitempty"`
	// SampleOf is the count the sample stands for: Items, or for the
	// naive sweep the unreachable objects among them.
	SampleOf int64  `json:"sample_of,omitempty"`
	Setting  string `json:"setting,omitempty"` // the ceiling's best batch setting
	// CPU is the processor time of the timed part (see CPU).
	CPU *CPU `json:"cpu,omitempty"`
	// EtcdSnapshots is what the bench's own member saved while the path
	// ran (see Snapshots); nil on a cluster of the user's.
	EtcdSnapshots *Snapshots `json:"etcd_snapshots,omitempty"`
	Note          string     `json:"note,omitempty"`
	// Scopes is the epoch update's work by scope (every node's together).
	Scopes []ScopeRate `json:"scopes,omitempty"`
}

// ScopeRate is what the epoch update did in one scope: objects stamped
// (or found stamped) and the seconds it took, over every node.
type ScopeRate struct {
	Scope   string  `json:"scope"`
	Objects int64   `json:"objects"`
	Seconds float64 `json:"seconds"`
	PerS    float64 `json:"per_s"`
}

// comparisons says which naive path and which ceiling each path is
// measured against.
var comparisons = map[string]struct{ naive, ceiling string }{
	NaiveGW:     {"", CeilingGW},
	GWMigrate:   {NaiveGW, CeilingGW},
	NaiveStamp:  {"", CeilingStmp},
	EpochUpdate: {NaiveStamp, CeilingStmp},
	GC:          {NaiveSweep, ""},
}

// order is the table's order: each real path after what it is compared
// with.
var order = []string{CeilingGW, NaiveGW, GWMigrate, CeilingStmp, NaiveStamp, EpochUpdate, CeilingUnlnk, NaiveSweep, GC}

// Run seeds an installation and measures every path. It returns the
// result even on error, with the paths measured so far. Cancelling ctx
// stops the path being measured and cleans up.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	res := &Result{
		Cores: runtime.NumCPU(), GoMaxProcs: runtime.GOMAXPROCS(0),
		Docs: cfg.Docs, Objects: cfg.Objects, ValueSize: cfg.ValueSize, Nodes: cfg.Nodes,
	}
	e, err := open(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer e.close(context.WithoutCancel(ctx))
	res.Etcd, res.Fsync = e.desc, e.fsync
	res.LoadAvg[0] = loadAvg()
	r := &runner{cfg: cfg, env: e, res: res}
	err = r.run(ctx)
	res.LoadAvg[1] = loadAvg()
	finish(res)
	if cfg.Measured != nil {
		cfg.Measured(res, err)
	}
	return res, err
}

// finish orders the paths, derives rates and ratios, and the peak.
func finish(res *Result) {
	byName := map[string]*Path{}
	for i := range res.Paths {
		p := &res.Paths[i]
		if p.Seconds > 0 {
			p.PerS = float64(p.Items) / p.Seconds
		}
		byName[p.Name] = p
	}
	for i := range res.Paths {
		p := &res.Paths[i]
		c := comparisons[p.Name]
		if n := byName[c.naive]; n != nil && n.PerS > 0 && p.PerS > 0 {
			p.VsNaive = ratio(p.PerS / n.PerS)
			p.Note = joinNote(p.Note, snapshotNote(p, n, "naive path"))
		}
		if c2 := byName[c.ceiling]; c2 != nil && c2.PerS > 0 && p.PerS > 0 {
			p.VsCeiling = ratio(p.PerS / c2.PerS)
			p.Note = joinNote(p.Note, cpuBound(p, c2, res.Cores))
			p.Note = joinNote(p.Note, snapshotNote(p, c2, "ceiling"))
		}
		res.PeakRSSMiB = max(res.PeakRSSMiB, p.PeakRSSMiB)
	}
	res.PeakRSSMiB = max(res.PeakRSSMiB, res.SeedRSSMiB)
	sorted := make([]Path, 0, len(res.Paths))
	for _, n := range order {
		if p := byName[n]; p != nil {
			sorted = append(sorted, *p)
		}
	}
	res.Paths = sorted
}

// cpuBound says how fast p could go at the processor time it took, on
// every core never idle, against its ceiling: a path whose bound is below
// a share of the ceiling cannot reach that share on this machine without
// doing less work, however its waits overlap. Empty where p's CPU or the
// cores are unknown.
func cpuBound(p, ceiling *Path, cores int) string {
	if p.CPU == nil || p.CPU.Total() <= 0 || cores <= 0 || p.Sampled {
		return ""
	}
	floor := p.CPU.Total() / float64(cores)
	most := float64(p.Items) / floor
	return fmt.Sprintf("at its CPU (%.1f CPU-s: %s) it takes at least %.2fs on %d cores, so it could not pass %.0f/s, %.0f %% of the ceiling",
		p.CPU.Total(), p.CPU.parts(), floor, cores, most, 100*most/ceiling.PerS)
}

func joinNote(note, more string) string {
	switch {
	case more == "":
		return note
	case note == "":
		return more
	}
	return note + "; " + more
}

func ratio(x float64) *float64 {
	// Three significant decimals are plenty, and the JSON stays readable.
	x = float64(int64(x*1000+0.5)) / 1000
	return &x
}

// measure times fn as the path name, with its memory, and appends it.
func (r *runner) measure(name string, fn func(p *Path) error) error {
	if r.env.member != nil {
		if err := r.clearSnapshot(context.Background()); err != nil {
			return err
		}
		if err := r.env.member.settle(context.Background()); err != nil {
			return err
		}
		if err := emptyReadBuffer(context.Background(), r.env.cli); err != nil {
			return err
		}
	}
	r.cfg.Log(fmt.Sprintf("measuring %s", name))
	p := Path{Name: name}
	snap, snapErr := r.snapshots()
	w := watchMemory()
	cpu := r.cpuMark()
	start := time.Now()
	var err error
	// The label lets a --cpuprofile be read one path at a time:
	// go tool pprof -tagfocus path=epoch-update …
	pprof.Do(context.Background(), pprof.Labels("path", name), func(context.Context) { err = fn(&p) })
	took := time.Since(start)
	el := took.Seconds()
	if p.CPU == nil { // a path that times part of its work measured that part's
		p.CPU = r.cpuSince(cpu, took)
	}
	m := w.Stop()
	if err == nil && r.env.member != nil {
		err = r.env.member.err()
	}
	// A diagnosis, not a measurement: unknown (nil) when either read fails.
	if after, aerr := r.snapshots(); snapErr == nil && aerr == nil {
		p.EtcdSnapshots = after.since(snap)
		if p.EtcdSnapshots.Count > 0 {
			p.Note = joinNote(p.Note, "etcd took "+p.EtcdSnapshots.String()+" during it")
		}
	}
	if p.Seconds == 0 {
		p.Seconds = el
	}
	p.PeakRSSMiB, p.RSSGrowthMiB, p.HeapPeakMiB = round1(m.PeakRSS), round1(m.RSSGrowth), round1(m.HeapPeak)
	if err != nil {
		return fmt.Errorf("bench: %s: %w", name, err)
	}
	r.res.Paths = append(r.res.Paths, p)
	if p.Seconds > 0 {
		r.cfg.Log(fmt.Sprintf("%s: %d in %.2fs, %.0f/s", name, p.Items, p.Seconds, float64(p.Items)/p.Seconds))
	}
	return nil
}

// snapshots reads the bench's member's snapshot count; errNoMember for a
// cluster of the user's, whose members the bench does not watch.
func (r *runner) snapshots() (Snapshots, error) {
	if r.env.member == nil {
		return Snapshots{}, errNoMember
	}
	return r.env.member.snapshots(context.Background())
}

var errNoMember = errors.New("bench: not the bench's own member")

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// loadAvg is the 1-minute load average, 0 where /proc/loadavg is absent.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	x, _ := strconv.ParseFloat(f[0], 64)
	return x
}
