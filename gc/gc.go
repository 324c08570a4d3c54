package gc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/libmap"
)

// lookupPage is how many epoch keys one read transaction fetches: etcd's
// default --max-txn-ops.
const lookupPage = 128

// lookupWorkers is how many epoch reads run at once, beside the scan.
const lookupWorkers = 4

// Config describes one GC run.
type Config struct {
	// Node is this node: the nodelocal sweep collects its maps-uuid and
	// chocks-idx. Required unless CA.
	Node string
	// CA sweeps the content-addressed storage (maps-ca, chocks-ca) instead,
	// as the single cluster-wide CA instance.
	CA bool
	// Layout holds the storage roots: Nodelocal for a node's sweep, Local
	// for the CA sweep.
	Layout composer.Layout
	// GWPrefix is the Gateway's prefix (default gateway.DefaultPrefix); the CA
	// sweep's roots are the version documents under <GWPrefix>/versions/.
	GWPrefix string
	// DryRun lists what would be deleted and writes nothing at all: no
	// registration, no epoch advance, no stamps, no deletions.
	DryRun bool
	// V2 is the legacy store, read for Gateway version documents not moved
	// yet (CA sweep) and for v2 epochs (V2Epochs). Nil reads v3 only.
	V2 clientv2.KeysAPI
	// V2Epochs is the pre-upgrade mode (gc-precollect): an object with no
	// v3 epoch but a v2 epoch key counts as stamped before the run if that
	// key was last modified before the run began (v2 index), and is deleted
	// with a v2 compare-and-delete on the index read, so a pre-0.14
	// composer that touched it in v2 meanwhile wins.
	V2Epochs bool
	// V2EpochPrefix is the v2 epoch cache (default libmap.DefaultPrefix).
	V2EpochPrefix string
	// Cache and Fence default to the default keys on the run's client
	// (docs/design.md#v3-keys).
	Cache *libmap.Cache
	Fence *fencing.Fence
	// Guard is added to every write (the CA pre-collection runs as a
	// leader hook); a deposed leader's run stops with ErrNotLeader.
	Guard           fencing.Guard
	InstanceOptions []fencing.InstanceOption
	// InFlight is how many write transactions run at once; default
	// DefaultInFlight.
	InFlight int
	// OnProgress is called from the run's goroutine as objects are swept.
	OnProgress func(Progress)
}

// Progress is a running account for progress bars and hooks.
type Progress struct {
	Phase   string // "mark", "sweep <scope>", or PhaseDone
	Scanned int64
	Deleted int64
	Errors  int64
}

// PhaseDone is the Phase of a run's last progress report, once its writes
// finished.
const PhaseDone = "done"

// Run is one GC run. It returns the report even on error: a fenced stop
// (error wrapping fencing.ErrFenced) reports what was deleted before.
// Cancelling ctx stops the run after the transactions in flight.
func Run(ctx context.Context, cli *clientv3.Client, cfg Config) (*Report, error) {
	if cfg.GWPrefix == "" {
		cfg.GWPrefix = gateway.DefaultPrefix
	}
	if cfg.V2EpochPrefix == "" {
		cfg.V2EpochPrefix = libmap.DefaultPrefix
	}
	if cfg.Cache == nil {
		cfg.Cache = libmap.New(cli)
	}
	if cfg.Fence == nil {
		cfg.Fence = fencing.NewFence(cli)
	}
	r := &Report{Node: cfg.Node, CA: cfg.CA, DryRun: cfg.DryRun}
	if err := cfg.check(); err != nil {
		return r, err
	}
	g := &run{cli: cli, cfg: cfg, r: r, incomplete: map[libmap.Scope]string{}}
	err := g.run(ctx)
	if err != nil && r.Stopped == "" && (errors.Is(err, fencing.ErrFenced) || errors.Is(err, fencing.ErrInstanceLost) || errors.Is(err, fencing.ErrNotLeader)) && r.Epoch > 0 {
		r.Stopped = err.Error()
		err = fmt.Errorf("%w; stopped after deleting %d objects", err, r.Deleted)
	}
	return r, err
}

func (c Config) check() error {
	if c.CA {
		if c.V2Epochs && c.V2 == nil {
			return fmt.Errorf("gc: V2Epochs needs a v2 client")
		}
		return composer.CheckRoot(c.Layout.Local)
	}
	if c.Node == "" {
		return fmt.Errorf("gc: a node name is required for the nodelocal sweep")
	}
	if c.V2Epochs && c.V2 == nil {
		return fmt.Errorf("gc: V2Epochs needs a v2 client")
	}
	return composer.CheckRoot(c.Layout.Nodelocal)
}

type run struct {
	cli  *clientv3.Client
	cfg  Config
	inst *fencing.Instance
	// epoch is G, the epoch this run advanced to: objects stamped before it
	// are collectible, objects stamped or touched since are kept.
	epoch uint64
	cmps  []clientv3.Cmp

	mu sync.Mutex // guards r from the writers' goroutines
	r  *Report

	del, stamp *batch.Writer
	addMu      sync.Mutex // serialises Add on the writers
	pending    []candidate
	pages      chan []candidate // to the lookup workers
	lookups    sync.WaitGroup
	lookupErr  error // guarded by mu
	v2mu       sync.Mutex

	idxReach   *markSet[uint64]   // chocks-idx reached by this node's maps
	caMaps     *markSet[[32]byte] // maps-ca named by Gateway versions
	caChocks   *markSet[chockKey] // chocks-ca of those maps (see chockKey)
	incomplete map[libmap.Scope]string
	tombs      map[libmap.Scope]*tombs // where each scope's collected files are set aside
	removals   chan *deletion          // committed deletions, to the removers
	removers   sync.WaitGroup
	fileNanos  atomic.Int64 // time the writers and removers spent moving and removing files

	v2Start uint64
	v2Dirs  map[string]map[string]uint64 // v2 epoch dir → name → modified index
}

// candidate is an unreachable object waiting for its epoch.
type candidate struct {
	scope libmap.Scope
	id    string
	path  string
	key   string
}

// DefaultInFlight is how many of a run's deletion (and stamping)
// transactions are in flight at once. A deletion's writer also moves its
// objects' files aside before the transaction (the removers remove them
// after), so more writers keep etcd busy while others are in the kernel:
// on 2 cores, `rokup bench --docs 2000 --objects 200000` alternating 4,
// 8, 16 and 32 (2026-12-01) swept 17.3–17.5k, 16.7–19.8k, 18.3–20.1k and 19.5k
// objects/s; 16 was ahead of 8 in every pair.
const DefaultInFlight = 16

// Removers is how many files of committed deletions a run removes at
// once. On this project's 2-core VM (ext4 mounted with discard, 2026-12-02),
// 100 000 small files unlinked at 9 500/s from one goroutine, 18 700/s
// from 8, 21 400/s from 16, and set aside then removed by 16 at once at
// 20 300/s: the set-aside renames hide behind the removals' waits.
const Removers = 16

// removalQueue bounds the committed deletions waiting for a remover: when
// the removers fall behind, the writers wait, and memory stays flat.
const removalQueue = 1024

func (g *run) startRemovers() {
	g.removals = make(chan *deletion, removalQueue)
	for range Removers {
		g.removers.Add(1)
		go func() {
			defer g.removers.Done()
			for d := range g.removals {
				d.remove()
			}
		}()
	}
}

func (g *run) run(ctx context.Context) error {
	cfg := g.cfg
	if err := cfg.Fence.Check(ctx); err != nil {
		return err
	}
	if err := cfg.Guard.Check(ctx, g.cli); err != nil {
		return err
	}
	if cfg.DryRun {
		e, err := g.currentEpoch(ctx)
		if err != nil {
			return err
		}
		g.epoch = e + 1
		if n := AsideFiles(g.root()); n > 0 {
			g.note(fmt.Sprintf("%d files set aside by an interrupted GC are under %s: the next run (or the sidecar) puts them back", n, filepath.Join(g.root(), AsideDir)))
		}
	} else {
		var err error
		if cfg.CA {
			g.inst, err = fencing.RegisterCA(ctx, g.cli, append([]fencing.InstanceOption{fencing.WithInstanceFence(cfg.Fence)}, cfg.InstanceOptions...)...)
		} else {
			g.inst, err = fencing.Register(ctx, g.cli, cfg.Node, append([]fencing.InstanceOption{fencing.WithInstanceFence(cfg.Fence)}, cfg.InstanceOptions...)...)
		}
		if err != nil {
			return err
		}
		defer g.inst.Close(context.WithoutCancel(ctx))
		// G is advanced before the mark: anything stamped or touched from
		// now on, including the chocks of a map written while we mark,
		// carries an epoch ≥ G and is kept.
		if g.epoch, err = cfg.Cache.Advance(ctx); err != nil {
			return err
		}
		g.cmps = append(cfg.Guard.Cmps(), cfg.Fence.AbsentCmp(), g.inst.Cmp())
		// Files an earlier GC set aside and never finished with go back
		// before the mark: a map among them may be a root by now.
		rec, err := Recover(ctx, g.cli, []string{g.root()}, g.inst.Lease())
		g.r.Recovered = rec
		if err != nil {
			return err
		}
		g.tombs = map[libmap.Scope]*tombs{}
		for _, sc := range libmap.Scopes() {
			g.tombs[sc] = newTombs(asideScopeDir(g.root(), g.inst.Lease(), sc))
		}
		defer g.removeAsideDir()
	}
	g.r.Epoch = g.epoch
	if cfg.V2Epochs {
		idx, err := g.v2Index(ctx)
		if err != nil {
			return err
		}
		g.v2Start, g.v2Dirs = idx, map[string]map[string]uint64{}
	}

	g.progress("mark")
	markStart := time.Now()
	var scopes []libmap.Scope
	if cfg.CA {
		if err := g.markCA(ctx); err != nil {
			return err
		}
		scopes = []libmap.Scope{libmap.MapsCA, libmap.ChocksCA}
	} else {
		if err := g.markNode(ctx); err != nil {
			return err
		}
		scopes = []libmap.Scope{libmap.ChocksIdx}
	}

	g.r.Seconds.Mark = time.Since(markStart).Seconds()
	sweepStart := time.Now()
	defer func() {
		g.r.Seconds.Sweep = time.Since(sweepStart).Seconds()
		g.r.Seconds.Files = time.Duration(g.fileNanos.Load()).Seconds()
	}()
	if !cfg.DryRun {
		if cfg.InFlight <= 0 {
			cfg.InFlight = DefaultInFlight
		}
		wcfg := batch.Config{InFlight: cfg.InFlight, Cmps: g.cmps}
		dcfg, scfg := wcfg, wcfg
		dcfg.OnConflict = g.resolve
		scfg.OnConflict = g.resolve
		g.del = batch.New(ctx, g.cli, dcfg)
		g.stamp = batch.New(ctx, g.cli, scfg)
		g.startRemovers()
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.pages = make(chan []candidate, lookupWorkers)
	for i := 0; i < lookupWorkers; i++ {
		g.lookups.Add(1)
		go func() {
			defer g.lookups.Done()
			for page := range g.pages {
				if g.lookupFailed() != nil {
					continue // drain
				}
				if err := g.decide(lctx, page); err != nil {
					g.count(func(*Report) {
						if g.lookupErr == nil {
							g.lookupErr = err
						}
					})
					cancel()
				}
			}
		}()
	}
	var err error
	for _, sc := range scopes {
		if err = g.sweep(lctx, sc); err != nil {
			break
		}
	}
	close(g.pages)
	g.lookups.Wait()
	if lerr := g.lookupFailed(); lerr != nil {
		err = lerr // the cause; the scan only saw the cancellation
	}
	if !cfg.DryRun {
		// Close both writers even after an error: what is in flight
		// finishes (or fails its compares) before the report is final.
		if e := g.del.Close(); err == nil {
			err = e
		}
		if e := g.stamp.Close(); err == nil {
			err = e
		}
		// Every committed deletion is queued by now: its file goes
		// before the report is final and the aside folder is removed.
		close(g.removals)
		g.removers.Wait()
	}
	g.progress(PhaseDone)
	return err
}

// root is the storage root this run sweeps.
func (g *run) root() string {
	if g.cfg.CA {
		return g.cfg.Layout.Local
	}
	return g.cfg.Layout.Nodelocal
}

func (g *run) currentEpoch(ctx context.Context) (uint64, error) {
	key := g.cfg.Cache.EpochKey()
	resp, err := g.cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("gc: read current epoch %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 1, nil // what libmap creates on first use
	}
	e, err := libmap.ParseEpoch(resp.Kvs[0].Value)
	if err != nil {
		return 0, fmt.Errorf("gc: current epoch %s: %w", key, err)
	}
	return e, nil
}

// stopped returns why the run must stop, if it must: the leader term
// ended, the fence is set, or the instance lost its registration.
func (g *run) stopped(ctx context.Context) error {
	if err := g.cfg.Guard.Check(ctx, g.cli); err != nil {
		return err
	}
	if err := g.cfg.Fence.Check(ctx); err != nil {
		return err
	}
	return g.inst.Check(ctx)
}
