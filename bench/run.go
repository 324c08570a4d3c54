package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// runner is one run: the environment, what the seed planted, and the
// result being filled.
type runner struct {
	cfg Config
	env *env
	res *Result

	nodes   []string
	gw      survey   // the seeded Gateway documents
	objects []object // a sample of the seeded objects, for the naive paths
	nObj    int64
	epochK  float64          // mean epoch key length
	garbage map[string]int64 // unreachable objects the seed planted, by scope/node
	unread  int64            // bad entries the update stamps, since it does not read maps (Manifest.StampedUnread)
	naiveK  []string         // the naive stamp's keys, which the naive sweep deletes
	// collected and freed are what gc removed: files and their bytes.
	collected, freed int64
}

type object struct {
	scope libmap.Scope
	id    string
}

func (r *runner) run(ctx context.Context) error {
	if err := r.seed(ctx); err != nil {
		return err
	}
	if r.cfg.Docs > 0 {
		if err := r.gateway(ctx); err != nil {
			return err
		}
	}
	if r.cfg.Objects > 0 {
		if err := r.epochs(ctx); err != nil {
			return err
		}
	}
	return nil
}

// seed writes the installation and keeps only what the paths need from
// its manifest, whose objects are regenerated as they are read.
func (r *runner) seed(ctx context.Context) error {
	k := r.env.keys
	r.nodes = seed.Nodes(r.cfg.Nodes)
	r.cfg.Log(fmt.Sprintf("seeding %d Gateway documents and %d objects on %d nodes", r.cfg.Docs, r.cfg.Objects, r.cfg.Nodes))
	w := watchMemory()
	start := time.Now()
	m, err := seed.Run(ctx, r.env.v2, seed.Config{
		Docs: r.cfg.Docs, Objects: r.cfg.Objects, Nodes: r.nodes, ValueSize: r.cfg.ValueSize,
		Seed: 1, GWPrefix: k.GW, V2Epochs: k.V2Epochs, Layout: r.env.storage,
		OnProgress: r.cfg.Progress,
	})
	r.res.SeedSecs = time.Since(start).Seconds()
	if err != nil {
		w.Stop()
		return fmt.Errorf("bench: seed: %w", err)
	}
	cache := r.cache()
	r.nObj = int64(m.Total)
	step := max(1, m.Total/max(1, r.cfg.NaiveSample))
	var keyBytes int64
	r.garbage = map[string]int64{}
	i := 0
	for o := range m.Objects() {
		keyBytes += int64(len(cache.Key(o.Scope, o.ID())))
		if !o.Reachable {
			r.garbage[string(o.Scope)+"/"+o.Node]++
		}
		if i%step == 0 && len(r.objects) < r.cfg.NaiveSample {
			r.objects = append(r.objects, object{o.Scope, o.ID()})
		}
		i++
	}
	if r.nObj > 0 {
		r.epochK = float64(keyBytes) / float64(r.nObj)
	}
	r.unread = int64(len(m.StampedUnread()))
	r.res.SeedV2EpochKeys = m.V2EpochKeys
	if m.V2EpochEvery > 1 {
		r.res.SeedNote = fmt.Sprintf("the v2 epoch cache holds a sample, %d keys (every %d-th of %d objects): etcd's v2 store holds its keys in memory",
			m.V2EpochKeys, m.V2EpochEvery, m.Total)
	}
	m = nil
	r.res.SeedRSSMiB = round1(w.Stop().PeakRSS)
	return nil
}

func (r *runner) cache() *libmap.Cache {
	k := r.env.keys
	return libmap.New(r.env.cli, libmap.WithPrefix(k.EpochPrefix), libmap.WithEpochKey(k.EpochKey))
}

// gateway measures the ceiling, the naive copy and the real move of the
// Gateway documents.
func (r *runner) gateway(ctx context.Context) error {
	var err error
	if r.gw, err = surveyV2(ctx, r.env.v2, r.env.keys.GW, r.cfg.Docs, r.cfg.NaiveSample); err != nil {
		return err
	}
	n := r.gw.docs
	keyLen, valLen := int(r.gw.keyBytes/n), int(r.gw.valBytes/n)
	if err := r.ceiling(ctx, CeilingGW, n, keyLen, valLen); err != nil {
		return err
	}
	if err := r.measure(NaiveGW, func(p *Path) error { return r.naiveGW(ctx, p) }); err != nil {
		return err
	}
	return r.measure(GWMigrate, func(p *Path) error {
		rep, err := gateway.Move(ctx, r.env.cli, r.env.v2, gateway.MoveOptions{Prefix: r.env.keys.GW, StateKey: r.env.keys.Scratch + "/gw-move"})
		p.Items = rep.Docs
		ps := rep.PhaseSeconds
		how := "by walking v2 again"
		switch {
		case rep.WatchVerify:
			how = "by the v3 watch during the copy, v2 unchanged"
		case rep.FastVerify:
			how = "by v3 ranges, v2 unchanged"
		}
		p.Note = fmt.Sprintf("%d txns, %d leases for %d TTL docs; %d v2 reads (%d whole subtrees, %d dropped); copy %.2fs (v2 read whole after %.2fs of it), verify %.2fs (%s); verified %s",
			rep.Txns, rep.Leases, rep.TTLDocs, rep.V2Reads.Reads, rep.V2Reads.Whole, rep.V2Reads.Dropped, ps["copy"], ps["read"], ps["verify"], how, rep.Checksum)
		if err == nil {
			r.res.Checks = append(r.res.Checks, fmt.Sprintf("gw migrate: %d documents moved and verified (%d seeded, hidden ledger included)", rep.Docs, n+1))
		}
		return err
	})
}

// naiveGW copies the first sampled documents the way a naive tool would:
// for each, one v2 get and one v3 put, in sequence. The v3 keys go to the
// scratch prefix so the real move starts on an empty keyspace; TTLs are
// not carried, which only flatters the naive copy.
func (r *runner) naiveGW(ctx context.Context, p *Path) error {
	dst := r.env.keys.Scratch + "/naive-gw"
	cpu, start := r.cpuMark(), time.Now()
	for i, k := range r.gw.sample {
		resp, err := r.env.v2.Get(ctx, k, nil)
		if err != nil {
			return err
		}
		if _, err := r.env.cli.Put(ctx, dst+k, resp.Node.Value); err != nil {
			return err
		}
		if i%100 == 0 {
			r.cfg.Progress(NaiveGW, int64(i), int64(len(r.gw.sample)))
		}
	}
	took := time.Since(start)
	r.extrapolate(p, r.gw.docs, int64(len(r.gw.sample)), took)
	p.CPU = r.cpuSince(cpu, took) // the scratch's removal is not the copy's
	return r.dropScratch(ctx, dst)
}

// extrapolate fills a sampled path: its time is the sample's, scaled to
// the full count.
func (r *runner) extrapolate(p *Path, items, sample int64, took time.Duration) {
	p.Items = items
	p.Sample, p.SampleOf = sample, items
	p.Sampled = sample < items
	if sample > 0 {
		p.Seconds = took.Seconds() * float64(items) / float64(sample)
	}
}

// epochs measures the ceiling, the naive stamp and the real epoch update,
// then the real GC right after it against a naive sweep.
func (r *runner) epochs(ctx context.Context) error {
	if err := r.ceiling(ctx, CeilingStmp, r.nObj, int(r.epochK+0.5), 1); err != nil {
		return err
	}
	if err := r.measure(NaiveStamp, func(p *Path) error { return r.naiveStamp(ctx, p) }); err != nil {
		return err
	}
	cache := r.cache()
	if err := r.measure(EpochUpdate, func(p *Path) error { return r.epochUpdate(ctx, cache, p) }); err != nil {
		return err
	}
	var candidates int64
	if err := r.measure(GC, func(p *Path) error {
		var err error
		candidates, err = r.gc(ctx, cache, p)
		return err
	}); err != nil {
		return err
	}
	if err := r.measure(NaiveSweep, func(p *Path) error { return r.naiveSweep(ctx, p, candidates) }); err != nil {
		return err
	}
	if r.collected == 0 {
		return nil
	}
	n, size := min(r.collected, DefaultUnlinkProbe), max(1, r.freed/r.collected)
	if err := r.measure(CeilingUnlnk, func(p *Path) error { return r.unlinkCeiling(ctx, p, int(n), size) }); err != nil {
		return err
	}
	r.gcBound()
	return nil
}

// gcBound adds to gc's note what the removal ceiling implies: the time
// its collected files alone take at that rate, and so the most any
// collector on this disk can be ahead of the naive sweep, which removes
// no file.
func (r *runner) gcBound() {
	g, naive, unl := r.path(GC), r.path(NaiveSweep), r.path(CeilingUnlnk)
	if g == nil || naive == nil || unl == nil || unl.Seconds <= 0 {
		return
	}
	files := float64(r.collected) * unl.Seconds / float64(unl.Items)
	g.Note += fmt.Sprintf("; its %d files alone take %.1fs at this disk's removal ceiling (%.0f files/s): %.0f %% of its time, and no collector here can be more than %.1f× the naive sweep",
		r.collected, files, float64(unl.Items)/unl.Seconds, 100*files/g.Seconds, naive.Seconds/files)
	if g.CPU == nil || unl.CPU == nil || g.CPU.Total() <= 0 {
		return
	}
	// The processor is the other bound: what the run spent, had the cores
	// never been idle, and the kernel's share of it that the removals
	// alone cost (the probe's system time per file).
	floor := g.CPU.Total() / float64(r.cores())
	perFile := unl.CPU.Sys / float64(unl.Items)
	g.Note += fmt.Sprintf("; it used %.1f CPU-s (%s), at least %.1fs on %d cores, so at its CPU no overlap could take it past %.1f× the naive sweep; a removal alone costs %.0f µs of kernel time here (%.1f CPU-s for its files)",
		g.CPU.Total(), g.CPU.parts(), floor, r.cores(), naive.Seconds/floor, perFile*1e6, perFile*float64(r.collected))
}

// path is the measured path named name, nil if it was not measured.
func (r *runner) path(name string) *Path {
	for i := range r.res.Paths {
		if r.res.Paths[i].Name == name {
			return &r.res.Paths[i]
		}
	}
	return nil
}

// naiveStamp puts one epoch key per sampled object, in sequence, under the
// scratch prefix (the real update must find its scopes empty, as on a
// cluster being upgraded).
func (r *runner) naiveStamp(ctx context.Context, p *Path) error {
	r.naiveK = r.naiveK[:0]
	start := time.Now()
	for i, o := range r.objects {
		k := r.env.keys.Scratch + "/naive-epochs/" + string(o.scope) + "/" + o.id
		if _, err := r.env.cli.Put(ctx, k, "1"); err != nil {
			return err
		}
		r.naiveK = append(r.naiveK, k)
		if i%100 == 0 {
			r.cfg.Progress(NaiveStamp, int64(i), int64(len(r.objects)))
		}
	}
	r.extrapolate(p, r.nObj, int64(len(r.objects)), time.Since(start))
	return nil
}

// epochUpdate is what the upgrade stamps, as a cluster's sidecars stamp
// it: every node's maps-uuid and chocks-idx at once (each node's
// epochs-nodelocal runs on that node, all together: here three scope
// updates of one process), then maps-ca and chocks-ca (the master's
// epochs-ca). Each call is composer.UpdateScopes, which the hooks run, so
// a node's two scopes overlap too. A scope's seconds are the span from its
// first node's start to its last node's end; scopes stamped at once share
// the machine, so their rates are each what it went at beside the other,
// and their seconds overlap.
func (r *runner) epochUpdate(ctx context.Context, cache *libmap.Cache, p *Path) error {
	var mu sync.Mutex
	var reps []composer.Report
	phase := func(stage string, layouts map[string]composer.Layout, scopes []libmap.Scope) error {
		g, gctx := errgroup.WithContext(ctx)
		done, total := runSums{}, runSums{}
		for node, l := range layouts {
			g.Go(func() error {
				rs, err := updateScopes(gctx, cache, l, scopes, composer.UpdateConfig{
					Node: node,
					OnProgress: func(d, t int64) {
						mu.Lock()
						defer mu.Unlock()
						r.cfg.Progress(stage, done.set(node, d), total.set(node, t))
					},
				})
				mu.Lock()
				reps = append(reps, rs...)
				mu.Unlock()
				return err
			})
		}
		return g.Wait()
	}
	nodes := map[string]composer.Layout{}
	for _, node := range r.nodes {
		nodes[node] = r.env.storage.Node(node)
	}
	if err := phase(EpochUpdate+" nodelocal", nodes, libmap.NodelocalScopes()); err != nil {
		return err
	}
	if err := phase(EpochUpdate+" ca", map[string]composer.Layout{"": r.env.storage.Node("")}, libmap.CAScopes()); err != nil {
		return err
	}

	var stamped, bad int64
	objs := map[libmap.Scope]int64{}
	first, last := map[libmap.Scope]time.Time{}, map[libmap.Scope]time.Time{}
	for _, rep := range reps {
		sc := rep.Scope
		stamped += rep.Stamped + rep.AlreadyStamped
		bad += rep.Skipped
		objs[sc] += rep.Stamped + rep.AlreadyStamped
		end := rep.Start.Add(time.Duration(rep.Seconds * float64(time.Second)))
		if first[sc].IsZero() || rep.Start.Before(first[sc]) {
			first[sc] = rep.Start
		}
		if end.After(last[sc]) {
			last[sc] = end
		}
	}
	p.Items = stamped
	p.Note = fmt.Sprintf("%d nodes' nodelocal scopes at once, then the CA scopes at once; %d bad entries skipped; seconds by scope (overlapping):", len(r.nodes), bad)
	for _, sc := range libmap.Scopes() {
		sr := ScopeRate{Scope: string(sc), Objects: objs[sc], Seconds: last[sc].Sub(first[sc]).Seconds()}
		p.Note += fmt.Sprintf(" %s %.1f", sc, sr.Seconds)
		if sr.Seconds > 0 {
			sr.PerS = float64(sr.Objects) / sr.Seconds
		}
		p.Scopes = append(p.Scopes, sr)
	}
	check := "epoch-update: every seeded object stamped"
	if stamped != r.nObj+r.unread {
		check = "epoch-update: MISMATCH"
	}
	r.res.Checks = append(r.res.Checks, fmt.Sprintf("%s (%d of %d, and %d malformed maps, stamped unread)", check, stamped, r.nObj, r.unread))
	return nil
}

// updateScopes is composer.UpdateScopes, a variable so that a test can
// check that the nodes' updates run at once.
var updateScopes = composer.UpdateScopes

// runSums holds the latest count each of several runs at once reported,
// for one line of progress over them all.
type runSums map[string]int64

// set records run's count and returns the sum over the runs.
func (s runSums) set(run string, n int64) (sum int64) {
	s[run] = n
	for _, v := range s {
		sum += v
	}
	return sum
}

// gcRun is gc.Run, a variable so that a test can check that the nodes'
// runs go at once.
var gcRun = gc.Run

// gc runs rok-gc on every node at once, as each node of a cluster runs its
// own (their nodelocal scopes are disjoint, and each run's epoch guards
// it alone), then the CA sweep, right after the epoch update: one run
// must collect every unreachable object. It returns the unreachable
// objects the sweeps looked up (the naive sweep's work).
func (r *runner) gc(ctx context.Context, cache *libmap.Cache, p *Path) (int64, error) {
	k := r.env.keys
	fence := fencing.NewFence(r.env.cli, fencing.WithFenceKey(k.Fence))
	base := gc.Config{
		GWPrefix: k.GW, V2: r.env.v2, Cache: cache, Fence: fence,
		InstanceOptions: []fencing.InstanceOption{fencing.WithInstancePrefix(k.Instances)},
	}
	var mu sync.Mutex // guards what follows, for the nodes' runs at once
	var scanned, deleted, candidates, eligible int64
	var kept []string
	var secs gc.Seconds
	progress := runSums{} // scanned so far, by run still going
	one := func(ctx context.Context, cfg gc.Config, scopes []libmap.Scope) error {
		run := cfg.Node
		if cfg.CA {
			run = "ca"
		}
		cfg.OnProgress = func(pr gc.Progress) {
			if pr.Phase == gc.PhaseDone {
				return // the run's last count came with its sweep
			}
			mu.Lock()
			defer mu.Unlock()
			r.cfg.Progress(GC+" "+pr.Phase, scanned+progress.set(run, pr.Scanned), r.nObj)
		}
		rep, err := gcRun(ctx, r.env.cli, cfg)
		mu.Lock()
		defer mu.Unlock()
		delete(progress, run)
		if rep == nil {
			return err
		}
		scanned += rep.Scanned
		deleted += rep.Deleted
		r.collected += rep.Deleted - rep.Vanished
		r.freed += rep.BytesFreed
		secs.Mark += rep.Seconds.Mark
		secs.Sweep += rep.Seconds.Sweep
		secs.Files += rep.Seconds.Files
		candidates += rep.Deleted + rep.TooRecent + rep.NoEpoch
		// A scope whose roots could not all be read is kept whole, by
		// design (the seed plants a bad map on every node): its garbage
		// is not eligible.
		for _, sc := range scopes {
			if incomplete(rep, sc) {
				kept = append(kept, string(sc)+"/"+cfg.Node)
				continue
			}
			eligible += r.garbage[string(sc)+"/"+cfg.Node]
		}
		return err
	}
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, node := range r.nodes {
		cfg := base
		cfg.Node, cfg.Layout = node, r.env.storage.Node(node)
		g.Go(func() error { return one(gctx, cfg, libmap.NodelocalScopes()) })
	}
	if err := g.Wait(); err != nil {
		return candidates, err
	}
	t1 := time.Now()
	cfg := base
	cfg.CA, cfg.Layout = true, r.env.storage.Node("")
	if err := one(ctx, cfg, libmap.CAScopes()); err != nil {
		return candidates, err
	}
	p.Items = scanned
	p.Note = fmt.Sprintf("%d nodes at once (%.1fs), then CA (%.1fs); %d unreachable collected; mark %.1fs, sweep %.1fs (summed over the runs; on files %.1fs, summed over the writers and removers at once)",
		len(r.nodes), t1.Sub(t0).Seconds(), time.Since(t1).Seconds(), deleted, secs.Mark, secs.Sweep, secs.Files)
	if len(kept) > 0 {
		p.Note += fmt.Sprintf("; kept whole for a root gc could not read: %s", strings.Join(kept, ", "))
	}
	check := "gc: one run after the epoch update collected all eligible garbage"
	if deleted != eligible {
		check = "gc: one run did NOT collect all eligible garbage"
	}
	r.res.Checks = append(r.res.Checks, fmt.Sprintf("%s (%d of %d)", check, deleted, eligible))
	return candidates, nil
}

// incomplete says whether a GC run kept scope whole (see
// gc.Report.RootsIncomplete).
func incomplete(rep *gc.Report, scope libmap.Scope) bool {
	for _, s := range rep.RootsIncomplete {
		if strings.HasPrefix(s, string(scope)+" kept:") {
			return true
		}
	}
	return false
}

// naiveSweep deletes the naive stamps one at a time as a naive GC would
// collect an object: one get of its epoch, one transaction deleting it if
// unchanged and unfenced. Its time is scaled to the candidates the real
// sweeps looked up; the storage scan and the mark are not counted, which
// only flatters the naive sweep. Items are the objects swept, as for gc.
func (r *runner) naiveSweep(ctx context.Context, p *Path, candidates int64) error {
	fence := r.env.keys.Fence
	cpu, start := r.cpuMark(), time.Now()
	for i, k := range r.naiveK {
		g, err := r.env.cli.Get(ctx, k)
		if err != nil {
			return err
		}
		if len(g.Kvs) == 0 {
			return fmt.Errorf("naive stamp %s vanished", k)
		}
		resp, err := r.env.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(fence), "=", 0),
			clientv3.Compare(clientv3.ModRevision(k), "=", g.Kvs[0].ModRevision),
		).Then(clientv3.OpDelete(k)).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return fmt.Errorf("naive sweep of %s failed its compares", k)
		}
		if i%100 == 0 {
			r.cfg.Progress(NaiveSweep, int64(i), int64(len(r.naiveK)))
		}
	}
	took := time.Since(start)
	p.CPU = r.cpuSince(cpu, took) // the scratch's removal is not the sweep's
	sample := int64(len(r.naiveK))
	var objects int64
	if g := r.path(GC); g != nil {
		objects = g.Items
	}
	p.Items, p.Sample, p.SampleOf, p.Sampled = objects, sample, candidates, true
	if sample > 0 {
		p.Seconds = took.Seconds() * float64(candidates) / float64(sample)
	}
	p.Note = fmt.Sprintf("get + txn for each of %d unreachable objects; scan and mark not counted", candidates)
	return r.dropScratch(ctx, r.env.keys.Scratch+"/naive-epochs")
}

// dropScratch deletes a scratch prefix and compacts, so the next path
// starts on a keyspace as lean as the first.
func (r *runner) dropScratch(ctx context.Context, prefix string) error {
	rev, err := deletePrefix(ctx, r.env.cli, prefix+"/", dropPage)
	if err != nil {
		return fmt.Errorf("delete %s: %w", prefix, err)
	}
	if r.env.member == nil {
		return nil // an existing cluster compacts on its own schedule
	}
	if _, err := r.env.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compact after %s: %w", prefix, err)
	}
	return nil
}

// dropPage is how many keys one of deletePrefix's requests removes.
const dropPage = 100_000

// deletePrefix deletes every key under prefix, page keys per request, and
// returns the revision after the last deletion. etcd applies a request as
// one raft entry: one deleting the ten million keys of a 10M-object
// ceiling outlasted the server's request timeout.
func deletePrefix(ctx context.Context, kv clientv3.KV, prefix string, page int64) (int64, error) {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		keys, err := kv.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(page))
		if err != nil {
			return 0, err
		}
		if len(keys.Kvs) == 0 {
			return keys.Header.Revision, nil
		}
		next := string(keys.Kvs[len(keys.Kvs)-1].Key) + "\x00"
		resp, err := kv.Delete(ctx, from, clientv3.WithRange(next))
		if err != nil {
			return 0, err
		}
		if !keys.More {
			return resp.Header.Revision, nil
		}
		from = next
	}
}

// survey is what a walk of the v2 Gateway prefix found.
type survey struct {
	docs     int64
	keyBytes int64
	valBytes int64
	sample   []string // the first documents, for the naive copy
}

// surveyV2 walks prefix one directory per request, for the ceiling's key
// and value sizes and the naive copy's sample, spread over the expected
// docs (buckets come first and are smaller). Not timed.
func surveyV2(ctx context.Context, kapi clientv2.KeysAPI, prefix string, expected, sample int) (survey, error) {
	var s survey
	step := int64(max(1, expected/max(1, sample)))
	err := conn.WalkV2(ctx, kapi, prefix, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			s.docs++
			s.keyBytes += int64(len(n.Key))
			s.valBytes += int64(len(n.Value))
			if (s.docs-1)%step == 0 && len(s.sample) < sample {
				s.sample = append(s.sample, n.Key)
			}
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("bench: survey v2: %w", err)
	}
	if s.docs == 0 {
		return s, fmt.Errorf("bench: no Gateway documents under v2 %s", prefix)
	}
	return s, nil
}
