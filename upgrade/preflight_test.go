package upgrade_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/upgrade"
)

// pfHook counts its runs under /test/pf/<hook>/<node>; it writes nothing else.
type pfHook struct {
	name string
	at   hooks.Placement
	cli  *clientv3.Client
}

func (h *pfHook) Name() string               { return h.name }
func (h *pfHook) Placement() hooks.Placement { return h.at }
func (h *pfHook) Run(ctx context.Context, t hooks.Task) error {
	_, err := h.cli.Put(ctx, "/test/pf/"+h.name+"/"+t.Node, "ran")
	return err
}

// pfStart runs a sidecar whose storage readiness is ready (nil: not checked).
func pfStart(t *testing.T, eps []string, node string, ready *upgrade.Readiness) (stop func()) {
	t.Helper()
	cli := embed.NewTestClient(t, eps)
	var hs []hooks.Hook
	for name, at := range map[string]hooks.Placement{
		upgrade.StepFence: hooks.Leader, upgrade.StepMigrate: hooks.Leader, upgrade.StepNodelocal: hooks.EveryNode,
		upgrade.StepCA: hooks.Leader, upgrade.StepAll: hooks.OneNode, upgrade.StepCleanup: hooks.Leader, upgrade.StepUnfence: hooks.Leader,
	} {
		hs = append(hs, &pfHook{name: name, at: at, cli: cli})
	}
	reg, err := hooks.NewRegistry(hs)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := upgrade.New(cli, reg, upgrade.Config{Node: node, SessionTTL: 2, FlushInterval: 50 * time.Millisecond,
		RetryBackoff: 100 * time.Millisecond, Member: upgrade.MemberInfo{Ready: ready},
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sc.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func pfUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pfRun(t *testing.T, cli *clientv3.Client, id string) *upgrade.Run {
	t.Helper()
	r, err := upgrade.NewStore(cli, upgrade.DefaultKeys).View(context.Background(), id)
	if err != nil {
		return nil
	}
	return r
}

func pfLive(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	pfUntil(t, "live sidecars", func() bool {
		m, err := upgrade.LiveMembers(context.Background(), cli, upgrade.DefaultKeys)
		return err == nil && len(m) == n
	})
}

func pfRan(t *testing.T, cli *clientv3.Client, hook string) bool {
	t.Helper()
	resp, err := cli.Get(context.Background(), "/test/pf/"+hook+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count > 0
}

// storage makes a usable pair of roots and returns them.
func storage(t *testing.T) (nodelocal, local string) {
	dir := t.TempDir()
	nodelocal, local = filepath.Join(dir, "nodelocal"), filepath.Join(dir, "local")
	for _, d := range []string{"nodelocal/maps-uuid", "nodelocal/chocks-idx", "local/maps-ca", "local/chocks-ca"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return nodelocal, local
}

func TestCheckStorageSaysWhichStepsANodeCanRun(t *testing.T) {
	nl, l := storage(t)
	empty := t.TempDir()
	file := filepath.Join(empty, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	marked := filepath.Join(t.TempDir(), "nl")
	if err := os.MkdirAll(filepath.Join(marked, "maps-uuid"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(marked, ".rok-node"), []byte("node-9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	onlyUUID := filepath.Join(t.TempDir(), "nl")
	if err := os.MkdirAll(filepath.Join(onlyUUID, "maps-uuid"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		nl, l      string
		skips      []string
		serves     []string
		cannot     string // why epochs-nodelocal cannot run, a substring
		cannotStep string
	}{
		{"both roots", nl, l, nil, []string{"gc-precollect", "gc-precollect-ca", "epochs-nodelocal", "epochs-ca", "epochs-all"}, "", upgrade.StepNodelocal},
		{"a missing nodelocal root", filepath.Join(empty, "nope"), l, nil, []string{"gc-precollect-ca", "epochs-ca"}, "does not exist", upgrade.StepNodelocal},
		{"no nodelocal root given", "", l, nil, []string{"gc-precollect-ca", "epochs-ca"}, "no nodelocal root given", upgrade.StepNodelocal},
		{"a file as root", file, l, nil, []string{"gc-precollect-ca", "epochs-ca"}, "not a directory", upgrade.StepNodelocal},
		{"a root without scope folders", empty, l, nil, []string{"gc-precollect-ca", "epochs-ca"}, "holds none of maps-uuid/, chocks-idx/", upgrade.StepNodelocal},
		{"another node's root", marked, l, nil, []string{"gc-precollect-ca", "epochs-ca"}, `belongs to node "node-9"`, upgrade.StepNodelocal},
		{"one scope folder is enough", onlyUUID, "", nil, []string{"gc-precollect", "epochs-nodelocal"}, "no local root given", upgrade.StepCA},
		{"skipped steps", nl, l, []string{"epochs-ca"}, []string{"gc-precollect", "gc-precollect-ca", "epochs-nodelocal", "epochs-all"}, "--skip-steps epochs-ca", upgrade.StepCA},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := upgrade.CheckStorage("n1", c.nl, c.l, c.skips)
			if !slices.Equal(r.Serves, c.serves) {
				t.Errorf("serves %v, want %v", r.Serves, c.serves)
			}
			why := r.Cannot(c.cannotStep)
			if (c.cannot == "") != (why == "") || !strings.Contains(why, c.cannot) {
				t.Errorf("cannot run %s: %q, want %q", c.cannotStep, why, c.cannot)
			}
		})
	}
}

func TestPreflightRejectsARunANodeCannotServeBeforeTheFence(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	nl, l := storage(t)
	good := upgrade.CheckStorage("node-x", nl, l, nil)
	bad := upgrade.CheckStorage("node-x", filepath.Join(t.TempDir(), "nope"), l, nil)
	pfStart(t, m.Endpoints(), "node-1", &good)
	pfLive(t, admin, 1)
	pfStart(t, m.Endpoints(), "node-2", &bad)
	pfLive(t, admin, 2)
	control(t, admin, `{"id":"u","action":"upgrade","mode":"nodelocal"}`)
	var run *upgrade.Run
	pfUntil(t, "the run to end", func() bool { run = pfRun(t, admin, "u"); return run != nil && upgrade.Terminal(run.State) })
	if run.State != upgrade.StateRejected || !strings.Contains(run.Error, "node node-2 cannot run epochs-nodelocal") || !strings.Contains(run.Error, "does not exist") {
		t.Fatalf("run ended %s: %q; want rejected naming node-2's missing root", run.State, run.Error)
	}
	if pfRan(t, admin, upgrade.StepFence) {
		t.Fatal("the fence step ran for a run its preflight rejected")
	}
	if h, err := fencing.NewFence(admin).Get(context.Background()); err != nil || h != nil {
		t.Fatalf("fence after a rejected run: %v %v", h, err)
	}
}

func TestPreflightRejectsARunWhileAnotherHoldsTheFence(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	nl, l := storage(t)
	good := upgrade.CheckStorage("node-x", nl, l, nil)
	pfStart(t, m.Endpoints(), "node-1", &good)
	pfLive(t, admin, 1)
	if _, err := fencing.NewFence(admin).Set(context.Background(), "ops@host", "disk maintenance"); err != nil {
		t.Fatal(err)
	}
	control(t, admin, `{"id":"u","action":"upgrade"}`)
	var run *upgrade.Run
	pfUntil(t, "the run to end", func() bool { run = pfRun(t, admin, "u"); return run != nil && upgrade.Terminal(run.State) })
	if run.State != upgrade.StateRejected || !strings.Contains(run.Error, `held by "ops@host"`) {
		t.Fatalf("run ended %s: %q; want rejected naming the fence's holder", run.State, run.Error)
	}
	if pfRan(t, admin, upgrade.StepFence) {
		t.Fatal("the fence step ran")
	}
}

func TestPreflightWaitsForADownNodeWithoutFencing(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	nl, l := storage(t)
	good := upgrade.CheckStorage("node-x", nl, l, nil)
	pfStart(t, m.Endpoints(), "node-1", &good)
	pfLive(t, admin, 1)
	stop := pfStart(t, m.Endpoints(), "node-2", &good)
	pfLive(t, admin, 2)
	stop()
	pfLive(t, admin, 1)
	control(t, admin, `{"id":"u","action":"upgrade","nodes":["node-1","node-2"]}`)
	pfUntil(t, "the preflight to wait", func() bool {
		r := pfRun(t, admin, "u")
		return r != nil && r.Preflight != nil && r.Preflight.State == upgrade.PreflightWaiting
	})
	if pfRan(t, admin, upgrade.StepFence) {
		t.Fatal("the fence was set while the run waits for a node")
	}
	run := pfRun(t, admin, "u")
	if run.State != upgrade.StateRunning || !strings.Contains(run.Preflight.Problems[0].Detail, "waiting for node node-2") {
		t.Fatalf("run %s, preflight %+v", run.State, run.Preflight)
	}
	pfStart(t, m.Endpoints(), "node-2", &good)
	pfUntil(t, "the run to end", func() bool { run = pfRun(t, admin, "u"); return run != nil && upgrade.Terminal(run.State) })
	if run.State != upgrade.StateDone || run.Preflight.State != upgrade.PreflightPassed {
		t.Fatalf("run ended %s (%s), preflight %+v", run.State, run.Error, run.Preflight)
	}
}

// The cluster-wide checks: a running Gateway (its liveness key in v2) is a
// reason to refuse; etcd 3.5 with v2 on is not.
func TestPreflightChecksTheGatewayAndEtcd(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	v2 := embed.NewTestV2(t, m.Endpoints())
	checks := []upgrade.Check{upgrade.EtcdCheck(cli, cli.Endpoints(), v2), upgrade.GatewayCheck(v2, "/rok/gw")}
	req := upgrade.Request{ID: "u", Action: upgrade.ActionUpgrade, Mode: upgrade.ModeNodelocal}
	ctx := context.Background()
	ps, err := upgrade.CheckRun(ctx, cli, upgrade.DefaultKeys, req, nil, "node-1", nil, checks)
	if err != nil || len(ps) != 0 {
		t.Fatalf("a quiet cluster: %v %v", ps, err)
	}
	if _, err := v2.Set(ctx, "/rok/gw/_alive/gw-7", "1", &clientv2.SetOptions{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ps, err = upgrade.CheckRun(ctx, cli, upgrade.DefaultKeys, req, nil, "node-1", nil, checks)
	if err != nil || len(ps) != 1 || ps[0].Wait || !strings.Contains(ps[0].Detail, "/rok/gw/_alive/gw-7") {
		t.Fatalf("a running Gateway: %+v %v; want one refusal naming its liveness key", ps, err)
	}
	// Once the move is done, a Gateway may run again.
	ps, err = upgrade.CheckRun(ctx, cli, upgrade.DefaultKeys, req, nil, "node-1", []string{upgrade.StepMigrate}, checks)
	if err != nil || len(ps) != 0 {
		t.Fatalf("a Gateway after the move: %v %v", ps, err)
	}
}

// Keys under the Gateway's prefix in v3 that v2 does not hold would fail
// the move once GC is fenced: the preflight refuses the run, naming them.
// A partial copy of v2's documents (a move interrupted before) is no
// reason to refuse, nor is anything once the move is done.
func TestPreflightRefusesAMoveThatWouldFailOnKeysV2DoesNotHold(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	v2 := embed.NewTestV2(t, m.Endpoints())
	checks := []upgrade.Check{upgrade.MoveCheck(cli, v2, "/rok/gw")}
	req := upgrade.Request{ID: "u", Action: upgrade.ActionUpgrade, Mode: upgrade.ModeNodelocal}
	ctx := context.Background()
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("/rok/gw/objects/b/doc-%02d", i)
		if _, err := v2.Set(ctx, k, "v", nil); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // half copied by an interrupted move
			if _, err := cli.Put(ctx, k, "v"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := cli.Put(ctx, "/rok/gw/_migrations/gw/0001_initial", "{}"); err != nil {
		t.Fatal(err)
	}
	ps, err := upgrade.CheckRun(ctx, cli, upgrade.DefaultKeys, req, nil, "node-1", nil, checks)
	if err != nil || len(ps) != 0 {
		t.Fatalf("a partial copy and a ledger entry: %+v %v; want no problem", ps, err)
	}
	stale := "/rok/gw/objects/b/deleted-from-v2"
	if _, err := cli.Put(ctx, stale, "v"); err != nil {
		t.Fatal(err)
	}
	ps, err = upgrade.CheckRun(ctx, cli, upgrade.DefaultKeys, req, nil, "node-1", nil, checks)
	if err != nil || len(ps) != 1 || ps[0].Wait || !strings.Contains(ps[0].Detail, stale) {
		t.Fatalf("a v3 key v2 does not hold: %+v %v; want one refusal naming %s", ps, err, stale)
	}
	ps, err = upgrade.CheckRun(ctx, cli, upgrade.DefaultKeys, req, nil, "node-1", []string{upgrade.StepMigrate}, checks)
	if err != nil || len(ps) != 0 {
		t.Fatalf("the same once the move is done: %v %v", ps, err)
	}
	// A v2 document too large for one transaction fails the move too: the
	// check, reading v2 here, refuses the run naming it.
	if _, err := cli.Delete(ctx, stale); err != nil {
		t.Fatal(err)
	}
	big := "/rok/gw/objects/b/too-large"
	if _, err := v2.Set(ctx, big, strings.Repeat("x", batch.DefaultMaxBytes), nil); err != nil {
		t.Fatal(err)
	}
	ps, err = upgrade.CheckRun(ctx, cli, upgrade.DefaultKeys, req, nil, "node-1", nil, checks)
	if err != nil || len(ps) != 1 || ps[0].Wait || !strings.Contains(ps[0].Detail, big) {
		t.Fatalf("an oversize v2 document: %+v %v; want one refusal naming %s", ps, err, big)
	}
}

// A rejected record replaced by a run of the same id under another master
// keeps the term it was written in: every write of the record stays
// checkable against its writer's term.
func TestARunReplacingARejectionKeepsItsTerms(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	nl, l := storage(t)
	good := upgrade.CheckStorage("node-x", nl, l, nil)
	stop1 := pfStart(t, m.Endpoints(), "node-1", &good)
	pfLive(t, admin, 1)
	fence := fencing.NewFence(admin)
	if _, err := fence.Set(context.Background(), "ops", "maintenance"); err != nil {
		t.Fatal(err)
	}
	control(t, admin, `{"id":"u","action":"upgrade"}`)
	var run *upgrade.Run
	pfUntil(t, "the rejection", func() bool { run = pfRun(t, admin, "u"); return run != nil && run.State == upgrade.StateRejected })
	if len(run.Terms) != 1 || run.Terms[0].Node != "node-1" {
		t.Fatalf("the rejected record's terms: %+v", run.Terms)
	}
	stop1()
	pfStart(t, m.Endpoints(), "node-2", &good)
	pfLive(t, admin, 1)
	if _, err := fence.Release(context.Background(), "ops"); err != nil {
		t.Fatal(err)
	}
	control(t, admin, `{"id":"u","action":"upgrade"}`)
	pfUntil(t, "the run to end", func() bool { run = pfRun(t, admin, "u"); return run != nil && run.State == upgrade.StateDone })
	var nodes []string
	for _, term := range run.Terms {
		nodes = append(nodes, term.Node)
	}
	if strings.Join(nodes, ",") != "node-1,node-2" {
		t.Fatalf("terms of the run: %v, want node-1's (the rejection) and node-2's", nodes)
	}
}
