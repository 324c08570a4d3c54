package gc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/libmap"
)

// DefaultGWPrefix is where the Gateway keeps its documents; version
// documents are under <prefix>/versions/.
const DefaultGWPrefix = "/rok/gw"

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
	// GWPrefix is the Gateway's prefix (default DefaultGWPrefix); the CA
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
	// Cache and Fence default to the SPEC §3 keys on the run's client.
	Cache *libmap.Cache
	Fence *fencing.Fence
	// Guard is added to every write (the CA pre-collection runs as a
	// leader hook); a deposed leader's run stops with ErrNotLeader.
	Guard           fencing.Guard
	InstanceOptions []fencing.InstanceOption
	// InFlight is how many write transactions run at once.
	InFlight int
	// OnProgress is called from the run's goroutine as objects are swept.
	OnProgress func(Progress)
}

// Progress is a running account for progress bars and hooks.
type Progress struct {
	Phase   string // "mark" or "sweep <scope>"
	Scanned int64
	Deleted int64
	Errors  int64
}

// Run is one GC run. It returns the report even on error: a fenced stop
// (error wrapping fencing.ErrFenced) reports what was deleted before.
// Cancelling ctx stops the run after the transactions in flight.
func Run(ctx context.Context, cli *clientv3.Client, cfg Config) (*Report, error) {
	if cfg.GWPrefix == "" {
		cfg.GWPrefix = DefaultGWPrefix
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
	g    uint64 // G
	cmps []clientv3.Cmp

	mu sync.Mutex // guards r from the writers' goroutines
	r  *Report

	del, stamp *batch.Writer
	addMu      sync.Mutex // serialises Add on the writers
	pending    []candidate
	pages      chan []candidate // to the lookup workers
	lookups    sync.WaitGroup
	lookupErr  error // guarded by mu
	v2mu       sync.Mutex

	idxReach   map[uint64]struct{}   // chocks-idx reached by this node's maps
	caMaps     map[[32]byte]struct{} // maps-ca named by Gateway versions
	caChocks   map[[32]byte]struct{} // chocks-ca of those maps
	incomplete map[libmap.Scope]string

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
		g.g = e + 1
		if n, _ := countFiles(filepath.Join(g.root(), AsideDir)); n > 0 {
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
		if g.g, err = cfg.Cache.Advance(ctx); err != nil {
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
		defer g.removeAsideDir()
	}
	g.r.Epoch = g.g
	if cfg.V2Epochs {
		idx, err := g.v2Index(ctx)
		if err != nil {
			return err
		}
		g.v2Start, g.v2Dirs = idx, map[string]map[string]uint64{}
	}

	g.progress("mark")
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

	if !cfg.DryRun {
		wcfg := batch.Config{InFlight: cfg.InFlight, Cmps: g.cmps}
		dcfg, scfg := wcfg, wcfg
		dcfg.OnConflict = g.resolve
		scfg.OnConflict = g.resolve
		g.del = batch.New(ctx, g.cli, dcfg)
		g.stamp = batch.New(ctx, g.cli, scfg)
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
	}
	g.progress("done")
	return err
}

// root is the storage root this run sweeps.
func (g *run) root() string {
	if g.cfg.CA {
		return g.cfg.Layout.Local
	}
	return g.cfg.Layout.Nodelocal
}

// removeAsideDir removes this instance's aside folder, which every
// finished deletion has left empty (os.Remove removes empty folders only).
func (g *run) removeAsideDir() {
	dir := filepath.Join(g.root(), AsideDir, leaseName(g.inst.Lease()))
	for _, sc := range libmap.Scopes() {
		os.Remove(filepath.Join(dir, string(sc)))
	}
	os.Remove(dir)
	os.Remove(filepath.Join(g.root(), AsideDir))
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
	e, err := parseEpoch(resp.Kvs[0].Value)
	if err != nil {
		return 0, fmt.Errorf("gc: current epoch %s: %w", key, err)
	}
	return e, nil
}

// parseEpoch is libmap's epoch format: a decimal integer ≥ 1. A bad epoch
// key is not an error of the run: its object is kept and reported.
func parseEpoch(v []byte) (uint64, error) {
	e, err := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
	if err != nil || e == 0 {
		return 0, fmt.Errorf("%w: %q", libmap.ErrBadEpoch, v)
	}
	return e, nil
}

// markNode marks what this node's maps reach: every maps-uuid is a root
// (a live volume) and reaches the chocks-idx it lists.
func (g *run) markNode(ctx context.Context) error {
	g.idxReach = map[uint64]struct{}{}
	err := g.cfg.Layout.Scan(ctx, libmap.MapsUUID, func(e composer.Entry) error {
		if !e.Valid() {
			g.bad(e)
			if e.Bad == composer.Unreadable || e.Bad == composer.BadMap {
				g.rootsIncomplete(libmap.ChocksIdx, fmt.Sprintf("map %s cannot be read (%s)", e.Path, e.Bad))
			}
			return nil
		}
		g.r.Scanned++
		g.r.Reachable++
		g.r.Roots++
		refs, err := composer.ReadMap(e.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since listed: a volume went away
		}
		if err != nil {
			g.rootsIncomplete(libmap.ChocksIdx, fmt.Sprintf("map %s: %v", e.Path, err))
			return nil
		}
		for _, ref := range refs {
			if ref.Scope == libmap.ChocksIdx {
				n, _ := strconv.ParseUint(ref.Name, 10, 64) // ParseRef validated it
				g.idxReach[n] = struct{}{}
			}
		}
		return nil
	}, composer.WithoutRefs())
	if errors.Is(err, composer.ErrNoScopeDir) {
		return nil
	}
	return err
}

// markCA marks what the Gateway's versions reach: the maps-ca each names
// in "map", and the chocks-ca those maps list. Versions are read from v3
// and from v2 (before the move they live in v2): more roots is the safe
// side.
func (g *run) markCA(ctx context.Context) error {
	g.caMaps, g.caChocks = map[[32]byte]struct{}{}, map[[32]byte]struct{}{}
	prefix := strings.TrimSuffix(g.cfg.GWPrefix, "/") + "/versions/"
	if err := g.v3Versions(ctx, prefix); err != nil {
		return err
	}
	if g.cfg.V2 != nil {
		if err := g.v2Versions(ctx, strings.TrimSuffix(prefix, "/")); err != nil {
			return err
		}
	} else {
		g.note("Gateway versions read from v3 only (no v2 client)")
	}
	for h := range g.caMaps {
		name := hex.EncodeToString(h[:])
		path := g.cfg.Layout.Path(libmap.MapsCA, name)
		refs, err := composer.ReadMap(path)
		if errors.Is(err, fs.ErrNotExist) {
			g.r.MissingRoots++
			continue
		}
		if err != nil {
			g.rootsIncomplete(libmap.ChocksCA, fmt.Sprintf("map %s: %v", path, err))
			continue
		}
		for _, ref := range refs {
			if ref.Scope == libmap.ChocksCA {
				g.caChocks[hash(ref.Name)] = struct{}{}
			}
		}
	}
	return nil
}

func (g *run) v3Versions(ctx context.Context, prefix string) error {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	for {
		resp, err := g.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(1000))
		if err != nil {
			return fmt.Errorf("gc: read Gateway versions %s: %w", prefix, err)
		}
		for _, kv := range resp.Kvs {
			g.version(string(kv.Key), kv.Value)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// v2Versions walks the v2 versions tree one directory level at a time.
func (g *run) v2Versions(ctx context.Context, dir string) error {
	queue := []string{dir}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		resp, err := g.cfg.V2.Get(ctx, d, &clientv2.GetOptions{Sort: true})
		if clientv2.IsKeyNotFound(err) {
			continue
		}
		if err != nil {
			err = conn.V2Error(err)
			if errors.Is(err, conn.ErrV2Disabled) {
				g.note("the etcd v2 API is disabled: Gateway versions read from v3 only")
				return nil
			}
			return fmt.Errorf("gc: read Gateway versions in v2 %s: %w", d, err)
		}
		if !resp.Node.Dir {
			g.version(resp.Node.Key, []byte(resp.Node.Value))
			continue
		}
		for _, n := range resp.Node.Nodes {
			if n.Dir {
				queue = append(queue, n.Key)
			} else {
				g.version(n.Key, []byte(n.Value))
			}
		}
	}
	return nil
}

// version marks the map a version document names. A document that is not
// JSON, or names a map in a form we do not know, might name a map we cannot
// see: the CA scopes are then not collected at all.
func (g *run) version(key string, v []byte) {
	var doc struct {
		Map *string `json:"map"`
	}
	if err := json.Unmarshal(v, &doc); err != nil {
		g.badf("version document %s is not JSON", key)
		g.rootsIncomplete(libmap.MapsCA, "version document "+key+" is not JSON")
		g.rootsIncomplete(libmap.ChocksCA, "version document "+key+" is not JSON")
		return
	}
	if doc.Map == nil {
		return
	}
	name, ok := strings.CutPrefix(*doc.Map, string(libmap.MapsCA)+"/")
	if !ok || !composer.ValidName(libmap.MapsCA, name) {
		g.badf("version document %s names map %q", key, *doc.Map)
		g.rootsIncomplete(libmap.MapsCA, fmt.Sprintf("version document %s names map %q", key, *doc.Map))
		g.rootsIncomplete(libmap.ChocksCA, fmt.Sprintf("version document %s names map %q", key, *doc.Map))
		return
	}
	g.r.Roots++
	g.caMaps[hash(name)] = struct{}{}
}

func hash(name string) [32]byte {
	var h [32]byte
	hex.Decode(h[:], []byte(name)) // names are validated hashes
	return h
}

// sweep walks scope's storage and collects what the mark did not reach.
func (g *run) sweep(ctx context.Context, scope libmap.Scope) error {
	phase := "sweep " + string(scope)
	g.progress(phase)
	skip := g.incomplete[scope] != ""
	err := g.cfg.Layout.Scan(ctx, scope, func(e composer.Entry) error {
		if !e.Valid() {
			g.bad(e)
			return nil
		}
		g.count(func(r *Report) { r.Scanned++ })
		if g.reached(scope, e.Name) || skip {
			g.count(func(r *Report) { r.Reachable++ })
			return nil
		}
		id := scope.ID(g.cfg.Node, e.Name)
		g.pending = append(g.pending, candidate{scope: scope, id: id, path: e.Path, key: g.cfg.Cache.Key(scope, id)})
		if len(g.pending) >= lookupPage {
			if err := g.flush(ctx); err != nil {
				return err
			}
			g.progress(phase)
		}
		return nil
	}, composer.WithoutRefs())
	if errors.Is(err, composer.ErrNoScopeDir) {
		err = nil
	}
	if err == nil {
		err = g.flush(ctx)
	}
	return err
}

func (g *run) reached(scope libmap.Scope, name string) bool {
	switch scope {
	case libmap.ChocksIdx:
		n, _ := strconv.ParseUint(name, 10, 64)
		_, ok := g.idxReach[n]
		return ok
	case libmap.MapsCA:
		_, ok := g.caMaps[hash(name)]
		return ok
	case libmap.ChocksCA:
		_, ok := g.caChocks[hash(name)]
		return ok
	}
	return true // maps-uuid: every one is a root
}

// flush hands the pending candidates to the lookup workers.
func (g *run) flush(ctx context.Context) error {
	if len(g.pending) == 0 {
		return g.lookupFailed()
	}
	page := g.pending
	g.pending = nil
	select {
	case g.pages <- page:
	case <-ctx.Done():
		if err := g.lookupFailed(); err != nil {
			return err
		}
		return ctx.Err()
	}
	return g.lookupFailed()
}

func (g *run) lookupFailed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lookupErr
}

// decide reads the epochs of a page of candidates in one read-only
// transaction and decides each: stamp, keep, or collect.
func (g *run) decide(ctx context.Context, page []candidate) error {
	ops := make([]clientv3.Op, len(page))
	for i, c := range page {
		ops[i] = clientv3.OpGet(c.key)
	}
	if testHookStep != nil {
		testHookStep(StepDecide, page[0].path)
	}
	resp, err := g.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("gc: read %d epochs: %w", len(page), err)
	}
	for i, c := range page {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			if err := g.noV3Epoch(ctx, c); err != nil {
				return err
			}
			continue
		}
		ep, err := parseEpoch(kvs[0].Value)
		switch {
		case err != nil:
			g.badf("%s: epoch key %s: %v (kept)", c.path, c.key, err)
		case ep >= g.g:
			g.count(func(r *Report) { r.TooRecent++ })
		default:
			e := libmap.Entry{Scope: c.scope, ID: c.id, Epoch: ep, ModRevision: kvs[0].ModRevision}
			if err := g.collect(c, batch.Item{
				Cmps: []clientv3.Cmp{g.cfg.Cache.Unchanged(e)},
				Ops:  []clientv3.Op{g.cfg.Cache.OpDelete(e)},
				Size: len(c.key),
			}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// noV3Epoch handles an unreachable object without a v3 epoch: stamped with
// G and kept, unless the pre-upgrade mode finds an old v2 epoch for it.
func (g *run) noV3Epoch(ctx context.Context, c candidate) error {
	if g.cfg.V2Epochs {
		idx, ok, err := g.v2Epoch(ctx, c)
		if err != nil {
			return err
		}
		if ok {
			if idx > g.v2Start {
				g.count(func(r *Report) { r.TooRecent++ })
				return nil
			}
			// No ops in v3: the transaction only proves the fence is
			// absent, the instance holds, and no v3 epoch appeared; the
			// v2 compare-and-delete follows. A fence set between the two
			// lets this one deletion through: the pre-collection runs
			// before the upgrade sets its fence, so this is accepted.
			return g.collect(c, batch.Item{
				Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0)},
				Size: len(c.key),
			}, func() bool { return g.v2Delete(ctx, c, idx) })
		}
	}
	g.count(func(r *Report) { r.NoEpoch++ })
	if g.cfg.DryRun {
		return nil
	}
	g.addMu.Lock()
	defer g.addMu.Unlock()
	return g.stamp.Add(batch.Item{
		Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0)},
		Ops:  []clientv3.Op{clientv3.OpPut(c.key, strconv.FormatUint(g.g, 10))},
		Size: len(c.key) + 20,
	})
}

// collect queues the deletion of c: it.Cmps and it.Ops are the object's own
// compare and epoch-key delete; the writer adds the fence, instance and
// guard compares. pre, if set, runs after the transaction and before the
// file goes, and may veto it (the v2 compare-and-delete).
//
// The file is moved aside right before the transaction is sent and removed
// only once it committed; a transaction that fails (a touch won, the fence
// was set) or may have failed puts it back. See the package doc for why
// this order is what keeps a composer's write safe.
func (g *run) collect(c candidate, it batch.Item, pre func() bool) error {
	if g.cfg.DryRun {
		g.count(func(r *Report) {
			r.WouldDelete++
			r.Listed = listAppend(r.Listed, c.path)
		})
		return nil
	}
	if testHookCollect != nil {
		testHookCollect(c.path)
	}
	_, name := c.scope.SplitID(c.id)
	d := &deletion{g: g, c: c, tomb: asidePath(g.root(), g.inst.Lease(), c.scope, name), pre: pre}
	it.Prepare, it.Done, it.Abandon = d.prepare, d.done, d.abandon
	g.addMu.Lock()
	defer g.addMu.Unlock()
	return g.del.Add(it)
}

// testHookCollect lets tests act between the scan and a deletion.
var testHookCollect func(path string)

// The steps of one object's collection, as testHookStep names them: the
// hook is called before each.
const (
	StepDecide = "decide" // read the epochs of a page of candidates
	StepAside  = "aside"  // move the file aside
	StepDelete = "delete" // the guarded transaction deleting the epoch key
	StepFinish = "finish" // remove the file set aside, or put it back
)

// testHookStep lets tests interleave a run with other processes step by
// step.
var testHookStep func(step, path string)

func step(name, path string) {
	if testHookStep != nil {
		testHookStep(name, path)
	}
}

// deletion is one object on its way out. Its methods run on one writer
// goroutine at a time: prepare before the transaction, then done if it
// committed or abandon if it did not (or may not have).
type deletion struct {
	g    *run
	c    candidate
	tomb string
	pre  func() bool
	// aside is true while the file sits at tomb.
	aside bool
}

// prepare moves the file aside. An object whose file is already gone still
// has its epoch key deleted (an epoch key without its file is what the GC
// must never leave); a file that cannot be moved is kept, with its key.
func (d *deletion) prepare() bool {
	step(StepAside, d.c.path)
	vanished, err := setAside(d.c.path, d.tomb)
	if err != nil {
		d.g.count(func(r *Report) {
			r.Errors++
			r.ErrorList = listAppend(r.ErrorList, err.Error()+" (kept)")
		})
		return false
	}
	d.aside = !vanished
	step(StepDelete, d.c.path)
	return true
}

// done runs once the epoch key's deletion committed: the file set aside
// goes. A composer told "missing" from now on writes the object again at
// its own path, which this never touches.
func (d *deletion) done() {
	step(StepFinish, d.c.path)
	if d.pre != nil && !d.pre() {
		d.abandon()
		return
	}
	if !d.aside {
		d.g.count(func(r *Report) { r.Deleted++; r.Vanished++ })
		return
	}
	var size int64
	if fi, err := os.Lstat(d.tomb); err == nil {
		size = fi.Size()
	}
	err := os.Remove(d.tomb)
	d.aside = false
	d.g.count(func(r *Report) {
		r.Deleted++
		switch {
		case err == nil:
			r.BytesFreed += size
		case errors.Is(err, fs.ErrNotExist):
			r.Vanished++ // put back by a recovery while this run was paused
		default:
			// The epoch key is gone and the file is aside, out of every
			// composer's way: the next recovery puts it back, the next
			// run stamps it and a later one collects it.
			r.Errors++
			r.ErrorList = listAppend(r.ErrorList, fmt.Sprintf("remove %s: %v", d.tomb, err))
		}
	})
}

// abandon puts the file back: the deletion did not commit, or may not
// have. Never over a file written since (putBack does not replace).
func (d *deletion) abandon() {
	if !d.aside {
		return
	}
	step(StepFinish, d.c.path)
	_, err := putBack(d.tomb, d.c.path)
	d.aside = false
	if err != nil {
		d.g.count(func(r *Report) {
			r.Errors++
			r.ErrorList = listAppend(r.ErrorList, err.Error()+" (the next recovery retries)")
		})
	}
}

// resolve is called when a transaction of the writers failed and the
// guard still holds: it tells a fence or a lost instance (stop) from an
// object that changed under us (kept), committing the others one by one.
func (g *run) resolve(ctx context.Context, items []batch.Item) error {
	// Every file goes back first: the one whose touch won the race is in
	// place again after one round trip, not after its turn below.
	for _, it := range items {
		if it.Abandon != nil {
			it.Abandon()
		}
	}
	if err := g.stopped(ctx); err != nil {
		return err
	}
	for _, it := range items {
		if it.Prepare != nil && !it.Prepare() {
			continue
		}
		resp, err := g.cli.Txn(ctx).If(append(append([]clientv3.Cmp{}, g.cmps...), it.Cmps...)...).Then(it.Ops...).Commit()
		if err != nil || !resp.Succeeded {
			if it.Abandon != nil {
				it.Abandon()
			}
		}
		if err != nil {
			return fmt.Errorf("gc: commit one object: %w", err)
		}
		if resp.Succeeded {
			if it.Done != nil {
				it.Done()
			}
			continue
		}
		if err := g.stopped(ctx); err != nil {
			return err
		}
		if it.Done != nil { // a deletion: the object was touched or stamped since read
			g.count(func(r *Report) { r.TooRecent++ })
		}
	}
	return nil
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

// v2Index is the v2 store's index now: v2 epochs modified after it were
// stamped or touched after the run began.
func (g *run) v2Index(ctx context.Context) (uint64, error) {
	resp, err := g.cfg.V2.Get(ctx, strings.TrimSuffix(g.cfg.V2EpochPrefix, "/"), nil)
	if err == nil {
		return resp.Index, nil
	}
	var ce clientv2.Error
	if errors.As(err, &ce) && ce.Code == clientv2.ErrorCodeKeyNotFound {
		return ce.Index, nil
	}
	return 0, fmt.Errorf("gc: read the v2 index: %w", conn.V2Error(err))
}

// v2Epoch looks c up in the v2 epoch cache; each directory is listed once
// (one level), as v2 has no multi-key read.
func (g *run) v2Epoch(ctx context.Context, c candidate) (uint64, bool, error) {
	dir := g.cfg.V2EpochPrefix + string(c.scope)
	node, name := c.scope.SplitID(c.id)
	if node != "" {
		dir += "/" + node
	}
	g.v2mu.Lock()
	defer g.v2mu.Unlock()
	entries, ok := g.v2Dirs[dir]
	if !ok {
		entries = map[string]uint64{}
		resp, err := g.cfg.V2.Get(ctx, dir, nil)
		switch {
		case clientv2.IsKeyNotFound(err):
		case err != nil:
			return 0, false, fmt.Errorf("gc: list v2 epochs %s: %w", dir, conn.V2Error(err))
		default:
			for _, n := range resp.Node.Nodes {
				if !n.Dir {
					entries[filepath.Base(n.Key)] = n.ModifiedIndex
				}
			}
		}
		g.v2Dirs[dir] = entries
	}
	idx, ok := entries[name]
	return idx, ok, nil
}

// v2Delete deletes c's v2 epoch key if it is unchanged since listed.
func (g *run) v2Delete(ctx context.Context, c candidate, idx uint64) bool {
	key := g.cfg.V2EpochPrefix + string(c.scope) + "/" + c.id
	_, err := g.cfg.V2.Delete(ctx, key, &clientv2.DeleteOptions{PrevIndex: idx})
	if err == nil {
		return true
	}
	g.count(func(r *Report) {
		var ce clientv2.Error
		if errors.As(err, &ce) && (ce.Code == clientv2.ErrorCodeTestFailed || ce.Code == clientv2.ErrorCodeKeyNotFound) {
			r.TooRecent++ // touched (or removed) in v2 since listed: kept
			return
		}
		r.Errors++
		r.ErrorList = listAppend(r.ErrorList, fmt.Sprintf("v2 delete %s: %v", key, err))
	})
	return false
}

func (g *run) count(f func(*Report)) {
	g.mu.Lock()
	f(g.r)
	g.mu.Unlock()
}

func (g *run) bad(e composer.Entry) {
	s := fmt.Sprintf("%s: %s", e.Path, e.Bad)
	if e.Err != nil {
		s += fmt.Sprintf(" (%v)", e.Err)
	}
	g.badf("%s", s)
}

func (g *run) badf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	g.count(func(r *Report) {
		r.Bad++
		r.BadList = listAppend(r.BadList, s)
	})
}

func (g *run) note(s string) {
	g.count(func(r *Report) { r.Notes = append(r.Notes, s) })
}

func (g *run) rootsIncomplete(scope libmap.Scope, why string) {
	if g.incomplete[scope] != "" {
		return
	}
	g.incomplete[scope] = why
	g.count(func(r *Report) {
		r.RootsIncomplete = append(r.RootsIncomplete, fmt.Sprintf("%s kept: %s", scope, why))
	})
}

func (g *run) progress(phase string) {
	if g.cfg.OnProgress == nil {
		return
	}
	g.mu.Lock()
	p := Progress{Phase: phase, Scanned: g.r.Scanned, Deleted: g.r.Deleted, Errors: g.r.Errors}
	g.mu.Unlock()
	g.cfg.OnProgress(p)
}
