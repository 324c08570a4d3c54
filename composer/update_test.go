package composer_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// seeded starts a member and seeds nodes with objects; storage only matters
// here, the v2 side is what seed always writes.
func seeded(t *testing.T, nodes, objects int) (*clientv3.Client, *seed.Manifest, seed.Layout) {
	t.Helper()
	m := embed.NewTestMember(t)
	l := seed.Layout{Dir: t.TempDir()}
	man, err := seed.Run(context.Background(), embed.NewTestV2(t, m.Endpoints()), seed.Config{Docs: 40, Objects: objects, Nodes: seed.Nodes(nodes), Seed: 1, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	return embed.NewTestClient(t, m.Endpoints()), man, l
}

// checkStamped asserts what a user checks after the epoch update (maps
// not read, as the hooks and the command run it by default): every valid
// object of the manifest and every malformed map has exactly one epoch
// key, holding the current epoch, and nothing else is under /epochs/ (no
// other bad entry).
func checkStamped(t *testing.T, cli *clientv3.Client, man *seed.Manifest, scopes ...libmap.Scope) {
	t.Helper()
	stampedAre(t, cli, man, false, scopes)
}

// checkStampedReadingMaps is checkStamped after an update with CheckRefs:
// malformed maps are skipped too.
func checkStampedReadingMaps(t *testing.T, cli *clientv3.Client, man *seed.Manifest, scopes ...libmap.Scope) {
	t.Helper()
	stampedAre(t, cli, man, true, scopes)
}

func stampedAre(t *testing.T, cli *clientv3.Client, man *seed.Manifest, checkRefs bool, scopes []libmap.Scope) {
	t.Helper()
	ctx := context.Background()
	cache := libmap.New(cli)
	cur, err := cache.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for o := range man.Objects() {
		for _, sc := range scopes {
			if o.Scope == sc {
				want[cache.Key(o.Scope, o.ID())] = true
			}
		}
	}
	for _, b := range man.StampedUnread() {
		if !checkRefs && slices.Contains(scopes, b.Scope) {
			want[cache.Key(b.Scope, b.ID())] = true
		}
	}
	resp, err := cli.Get(ctx, "/epochs/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if !want[string(kv.Key)] {
			t.Errorf("%s has an epoch but is no object the update stamps", kv.Key)
		}
		if string(kv.Value) != strconv.FormatUint(cur, 10) {
			t.Errorf("%s holds %s, current epoch %d", kv.Key, kv.Value, cur)
		}
		delete(want, string(kv.Key))
	}
	for k := range want {
		t.Errorf("valid object %s has no epoch", k)
	}
}

func TestUpdateStampsValidObjectsOnlyAndCountsMatch(t *testing.T) {
	cli, man, l := seeded(t, 1, 300)
	ctx := context.Background()
	cache := libmap.New(cli)
	node := man.Nodes[0]
	for _, sc := range libmap.Scopes() {
		rep, err := composer.Update(ctx, cache, l.Node(node), sc, composer.UpdateConfig{Node: node, CheckRefs: true})
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for _, b := range man.Bad {
			if b.Scope == sc {
				bad++
			}
		}
		if int(rep.Objects) != man.Count(sc, "") || int(rep.Stamped) != man.Count(sc, "") || int(rep.Skipped) != bad {
			t.Fatalf("%s: report %d objects, %d stamped, %d skipped; seed %d objects, %d bad", sc, rep.Objects, rep.Stamped, rep.Skipped, man.Count(sc, ""), bad)
		}
		if sc == libmap.MapsUUID && rep.MissingChocks != 1 {
			t.Fatalf("maps-uuid: %d missing chocks reported, the seed planted 1", rep.MissingChocks)
		}
	}
	checkStampedReadingMaps(t, cli, man, libmap.Scopes()...)

	// A re-run writes nothing and says everything was stamped already.
	before, _ := cli.Get(ctx, "/", clientv3.WithCountOnly())
	rep, err := composer.Update(ctx, cache, l.Node(node), libmap.ChocksIdx, composer.UpdateConfig{Node: node})
	if err != nil || rep.Stamped != 0 || int(rep.AlreadyStamped) != man.Count(libmap.ChocksIdx, "") {
		t.Fatalf("re-run %+v %v", rep, err)
	}
	after, _ := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if after.Header.Revision != before.Header.Revision {
		t.Fatal("a re-run over stamped objects wrote to etcd")
	}
}

// Without CheckRefs (the default) no map file is opened: a map is stamped
// on its name and a readability check, as a chock is, so the seed's
// malformed map is stamped and no missing chock is looked for; a map that
// cannot be read is still skipped.
func TestUpdateWithoutCheckRefsStampsMapsUnread(t *testing.T) {
	cli, man, l := seeded(t, 1, 300)
	ctx := context.Background()
	cache := libmap.New(cli)
	node := man.Nodes[0]
	var opened, checked atomic.Int64
	defer composer.BeforeObjectReads(func(isMap bool) {
		if isMap {
			checked.Add(1)
		}
	})()
	defer composer.CountMapOpens(&opened)()
	for _, sc := range []libmap.Scope{libmap.MapsUUID, libmap.MapsCA} {
		rep, err := composer.Update(ctx, cache, l.Node(node), sc, composer.UpdateConfig{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		bad, inContent := 0, 0
		for _, b := range man.Bad {
			if b.Scope == sc {
				bad++
				if b.Reason.InContent() {
					inContent++
				}
			}
		}
		if int(rep.Objects) != man.Count(sc, "")+inContent || int(rep.Skipped) != bad-inContent || rep.MissingChocks != 0 {
			t.Fatalf("%s: report %d objects, %d skipped, %d missing chocks; seed %d objects, %d bad of which %d malformed maps", sc, rep.Objects, rep.Skipped, rep.MissingChocks, man.Count(sc, ""), bad, inContent)
		}
	}
	if opened.Load() != 0 || checked.Load() == 0 {
		t.Fatalf("%d map files opened, %d maps checked for readability: want none opened, every map checked", opened.Load(), checked.Load())
	}
	checkStamped(t, cli, man, []libmap.Scope{libmap.MapsUUID, libmap.MapsCA}...)
}

func TestHooksStampPerNodeThenCAUnderGuard(t *testing.T) {
	cli, man, l := seeded(t, 3, 600)
	ctx := context.Background()
	cache := libmap.New(cli)
	var mu sync.Mutex
	var last hooks.Progress
	report := func(p hooks.Progress) { mu.Lock(); last = p; mu.Unlock() }

	for _, node := range man.Nodes {
		h := composer.NewEpochsNodelocalHook(cache, l.Node(node))
		if h.Name() != "epochs-nodelocal" || h.Placement() != hooks.EveryNode {
			t.Fatalf("%s %s", h.Name(), h.Placement())
		}
		if err := h.Run(ctx, hooks.Task{RunID: "r", Node: node, Report: report}); err != nil {
			t.Fatal(err)
		}
		want := int64(man.Count(libmap.MapsUUID, node) + man.Count(libmap.ChocksIdx, node))
		bad, stamped := int64(0), int64(0) // a malformed map is stamped unread
		for _, b := range man.Bad {
			if b.Node == node {
				bad++
				if b.Reason.InContent() {
					stamped++
				}
			}
		}
		if last.Done != want+bad || last.Total != want+bad || last.Skipped != bad-stamped || last.Errors != 0 {
			t.Fatalf("%s: last progress %+v, want %d done with %d bad entries skipped and no error", node, last, want+bad, bad-stamped)
		}
	}
	checkStamped(t, cli, man, libmap.NodelocalScopes()...)

	put, err := cli.Put(ctx, "/rok/upgrade/leader/abc", "node-2")
	if err != nil {
		t.Fatal(err)
	}
	guard := fencing.NewGuard("/rok/upgrade/leader/abc", put.Header.Revision)
	ca := composer.NewEpochsCAHook(cache, l.Node(""))
	if ca.Placement() != hooks.Leader {
		t.Fatal(ca.Placement())
	}
	// A deposed master's run stamps nothing.
	if _, err := cli.Delete(ctx, guard.Key); err != nil {
		t.Fatal(err)
	}
	if err := ca.Run(ctx, hooks.Task{Node: "node-2", Guard: guard}); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed master: %v", err)
	}
	if n, _ := cache.Count(ctx, libmap.ChocksCA, ""); n != 0 {
		t.Fatalf("a deposed master stamped %d chocks", n)
	}
	put, _ = cli.Put(ctx, guard.Key, "node-3")
	guard = fencing.NewGuard(guard.Key, put.Header.Revision)
	if err := ca.Run(ctx, hooks.Task{Node: "node-3", Guard: guard, Report: report}); err != nil {
		t.Fatal(err)
	}
	checkStamped(t, cli, man, libmap.Scopes()...)
}

func TestEpochsAllHookAndCancel(t *testing.T) {
	cli, man, l := seeded(t, 1, 200)
	cache := libmap.New(cli)
	h := composer.NewEpochsAllHook(cache, l.Node(man.Nodes[0]))
	if h.Placement() != hooks.OneNode {
		t.Fatal(h.Placement())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.Run(ctx, hooks.Task{Node: man.Nodes[0]}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Run(ctx, hooks.Task{Node: man.Nodes[0]}); err != nil {
		t.Fatal(err)
	}
	checkStamped(t, cli, man, libmap.Scopes()...)
	if err := composer.NewEpochsAllHook(cache, composer.Layout{Nodelocal: "/nonexistent", Local: l.Local()}).Run(ctx, hooks.Task{Node: "n"}); !errors.Is(err, composer.ErrNoRoot) {
		t.Fatalf("missing root: %v", err)
	}
}

// A dry run counts and classifies what the update would stamp and skip,
// without an etcd at all, and leaves the storage as it was.
func TestUpdateDryRunCountsAndWritesNothing(t *testing.T) {
	cli, man, l := seeded(t, 1, 300)
	ctx := context.Background()
	node := man.Nodes[0]
	before, err := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range libmap.Scopes() {
		rep, err := composer.Update(ctx, nil, l.Node(node), sc, composer.UpdateConfig{Node: node, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for _, b := range man.Bad {
			if b.Scope == sc {
				bad++
			}
		}
		if !rep.DryRun || int(rep.Objects) != man.Count(sc, "") || rep.Stamped != 0 || int(rep.Skipped) != bad || len(rep.BadSamples) != bad {
			t.Fatalf("%s: dry run %+v; seed %d objects, %d bad", sc, rep, man.Count(sc, ""), bad)
		}
	}
	after, err := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if after.Header.Revision != before.Header.Revision {
		t.Fatal("a dry run wrote to etcd")
	}
}

// The epoch hooks stamp their scopes at once, so that one scope's file
// reads overlap the other's etcd writes: each scope's scan is held at its
// first object until the other scope's scan has reached one too. Scopes
// stamped one after the other would never get past that; the deadline
// only turns such a hang into a failure (nothing here is timed).
func TestHooksStampTheirScopesAtOnce(t *testing.T) {
	cli, man, l := seeded(t, 1, 300)
	cache := libmap.New(cli)
	node := man.Nodes[0]
	for _, h := range []hooks.Hook{composer.NewEpochsNodelocalHook(cache, l.Node(node)), composer.NewEpochsCAHook(cache, l.Node(""))} {
		// Keyed by "is a map": closed when that kind's scan reaches its
		// first object.
		arrived := map[bool]chan struct{}{true: make(chan struct{}), false: make(chan struct{})}
		once := map[bool]*sync.Once{true: new(sync.Once), false: new(sync.Once)}
		kind := map[bool]string{true: "map", false: "chock"}
		var mu sync.Mutex
		var stuck []string
		deadline, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		restore := composer.BeforeObjectReads(func(isMap bool) {
			once[isMap].Do(func() { close(arrived[isMap]) })
			select {
			case <-arrived[!isMap]:
			case <-deadline.Done():
				mu.Lock()
				stuck = append(stuck, kind[isMap])
				mu.Unlock()
			}
		})
		err := h.Run(context.Background(), hooks.Task{Node: node})
		restore()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(stuck) > 0 {
			t.Fatalf("%s: a %s scan waited in vain for the other scope's scan to start: the scopes were not stamped at once", h.Name(), stuck[0])
		}
	}
	checkStamped(t, cli, man, libmap.Scopes()...)
}

// The progress total is counted beside the stamping, not before it: with
// the count held until stamping has begun, the update still runs, stamps
// everything, and its progress gets the total once the count is let go.
func TestUpdateScopesStampsWhileTheTotalIsCounted(t *testing.T) {
	cli, man, l := seeded(t, 1, 300)
	cache := libmap.New(cli)
	node := man.Nodes[0]
	stamping := make(chan struct{})
	var once sync.Once
	deadline, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var held, waited bool
	defer composer.HoldCount(func() {
		held = true
		select {
		case <-stamping:
		case <-deadline.Done():
			waited = true
		}
	})()
	var mu sync.Mutex
	var totals []int64
	reps, err := composer.UpdateScopes(context.Background(), cache, l.Node(node), libmap.NodelocalScopes(), composer.UpdateConfig{
		Node: node,
		OnProgress: func(done, total int64) {
			once.Do(func() { close(stamping) })
			mu.Lock()
			totals = append(totals, total)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !held || waited {
		t.Fatalf("counted: %v; no progress while the count was held: %v (the stamping waited for the count)", held, waited)
	}
	if totals[0] != 0 {
		t.Fatalf("the first progress had a total (%d) while the count was held", totals[0])
	}
	var objects int64
	for _, r := range reps {
		objects += r.Objects + r.Skipped
	}
	if last := totals[len(totals)-1]; last != 0 && last != objects {
		t.Fatalf("progress total %d, the scan found %d entries", last, objects)
	}
	checkStamped(t, cli, man, libmap.NodelocalScopes()...)
}
