package integration

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/sidecar"
	"github.com/rokup/rokup/upgrade"
	"github.com/rokup/rokup/verify"
)

type env struct {
	cluster *embed.Cluster
	cli     *clientv3.Client
	v2      clientv2.KeysAPI
	layout  seed.Layout
	m       *seed.Manifest
	nodes   []string
}

func newEnv(t *testing.T, docs, objects int) *env {
	t.Helper()
	c := embed.NewTestCluster(t, 3)
	e := &env{cluster: c, cli: embed.NewTestClient(t, c.Endpoints()), v2: embed.NewTestV2(t, c.Endpoints()),
		layout: seed.Layout{Dir: filepath.Join(t.TempDir(), "storage")}, nodes: seed.Nodes(3)}
	var err error
	e.m, err = seed.Run(context.Background(), e.v2, seed.Config{Docs: docs, Objects: objects, Nodes: e.nodes, Seed: 7, Layout: e.layout})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startSidecar starts node's real sidecar app; extra options decorate it.
func (e *env) startSidecar(t *testing.T, i int, extra ...fx.Option) *fx.App {
	t.Helper()
	n := e.nodes[i]
	eps := append(append([]string{}, e.cluster.Endpoints()[i:]...), e.cluster.Endpoints()[:i]...)
	app := sidecar.New(sidecar.Config{
		Node: n, Conn: conn.Config{Endpoints: eps, DialTimeout: 5 * time.Second},
		GWPrefix: e.m.GWPrefix, NodelocalRoot: e.layout.Nodelocal(n), LocalRoot: e.layout.Local(),
		Keys: upgrade.DefaultKeys, SessionTTL: 2, FlushInterval: 100 * time.Millisecond, RetryBackoff: 200 * time.Millisecond,
	}, zap.NewNop(), append([]fx.Option{fx.NopLogger}, extra...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = app.Stop(ctx)
	})
	return app
}

func (e *env) waitLive(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d live sidecars", n), func() bool {
		live, err := upgrade.LiveMembers(context.Background(), e.cli, upgrade.DefaultKeys)
		return err == nil && len(live) == n
	})
}

func (e *env) waitRun(t *testing.T, id string) *upgrade.Run {
	t.Helper()
	var run *upgrade.Run
	waitFor(t, "run "+id+" to end", func() bool {
		r, err := upgrade.NewStore(e.cli, upgrade.DefaultKeys).View(context.Background(), id)
		run = r
		return err == nil && upgrade.Terminal(r.State)
	})
	return run
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) requireInvariants(t *testing.T, run *upgrade.Run) {
	t.Helper()
	if run.State != upgrade.StateDone {
		t.Fatalf("run ended %s: %s", run.State, run.Error)
	}
	for _, c := range verify.After(context.Background(), e.cli, e.v2, e.m) {
		if !c.OK {
			t.Errorf("invariant broken: %s: %s", c.Name, c.Detail)
		}
	}
}

func TestSeededNodelocalUpgradeThroughAPlainPut(t *testing.T) {
	e := newEnv(t, 1500, 3000)
	for i := range e.nodes {
		e.startSidecar(t, i)
	}
	e.waitLive(t, 3)
	// The operator's write, with a plain etcd client: no rokup command.
	if _, err := e.cli.Put(context.Background(), "/rok/upgrade/control",
		`{"id": "upgrade-0.14", "action": "upgrade", "mode": "nodelocal", "nodes": ["node-1", "node-2", "node-3"]}`); err != nil {
		t.Fatal(err)
	}
	run := e.waitRun(t, "upgrade-0.14")
	e.requireInvariants(t, run)
	for _, s := range run.Steps {
		switch s.Name {
		case upgrade.StepNodelocal:
			// Done counts every entry looked at; Skipped the bad ones left
			// alone, which are not errors. The node's malformed map is
			// stamped: the update does not read maps.
			want := int64(e.m.Count("maps-uuid", s.Node) + e.m.Count("chocks-idx", s.Node))
			for _, b := range e.m.StampedUnread() {
				if b.Node == s.Node {
					want++
				}
			}
			if s.Done-s.Skipped != want || s.Errors != 0 {
				t.Errorf("epochs-nodelocal on %s stamped %d objects (%d done, %d skipped, %d errors), the node has %d and no error",
					s.Node, s.Done-s.Skipped, s.Done, s.Skipped, s.Errors, want)
			}
		case upgrade.StepCA:
			if s.Node != run.Leader {
				t.Errorf("epochs-ca ran on %s, the master is %s", s.Node, run.Leader)
			}
		}
	}
	var perNode []string
	for _, s := range run.Steps {
		if s.Name == upgrade.StepNodelocal {
			perNode = append(perNode, s.Node)
		}
	}
	if fmt.Sprint(perNode) != fmt.Sprint(e.nodes) {
		t.Errorf("epochs-nodelocal ran on %v, want one entry per node %v", perNode, e.nodes)
	}
}

// pausable wraps a hook so the first sidecar to run it stops before its
// first write until released, then writes regardless of cancellation, like
// a process that was paused (SIGSTOP) and wakes after losing its lease.
type pausable struct {
	hooks.Hook
	shared *pauseState
}

type pauseState struct {
	mu      sync.Mutex
	taken   bool
	paused  chan hooks.Task // receives the paused task
	release chan struct{}
	result  chan error // the paused run's outcome
}

func (p pausable) Run(ctx context.Context, t hooks.Task) error {
	p.shared.mu.Lock()
	first := !p.shared.taken
	p.shared.taken = true
	p.shared.mu.Unlock()
	if !first {
		return p.Hook.Run(ctx, t)
	}
	p.shared.paused <- t
	<-p.shared.release
	err := p.Hook.Run(context.WithoutCancel(ctx), t)
	p.shared.result <- err
	return err
}

func wrapHook(name string, st *pauseState) fx.Option {
	return fx.Decorate(func(reg *hooks.Registry) (*hooks.Registry, error) {
		var hs []hooks.Hook
		for _, n := range reg.Names() {
			h, _ := reg.Get(n)
			if n == name {
				h = pausable{Hook: h, shared: st}
			}
			hs = append(hs, h)
		}
		return hooks.NewRegistry(hs)
	})
}

func TestMasterLostDuringEpochsCA(t *testing.T) {
	e := newEnv(t, 500, 3000)
	st := &pauseState{paused: make(chan hooks.Task, 1), release: make(chan struct{}), result: make(chan error, 1)}
	for i := range e.nodes {
		e.startSidecar(t, i, wrapHook(upgrade.StepCA, st))
	}
	e.waitLive(t, 3)
	ctx := context.Background()
	if _, err := e.cli.Put(ctx, "/rok/upgrade/control", `{"id":"u","action":"upgrade"}`); err != nil {
		t.Fatal(err)
	}
	var task hooks.Task
	select {
	case task = <-st.paused:
	case <-time.After(90 * time.Second):
		t.Fatal("epochs-ca never started")
	}
	// The master is in epochs-ca. Take its lease away, as etcd does when a
	// paused master misses its keepalives.
	g, err := e.cli.Get(ctx, task.Guard.Key)
	if err != nil || len(g.Kvs) != 1 {
		t.Fatalf("election key %s: %v", task.Guard.Key, err)
	}
	if _, err := e.cli.Revoke(ctx, clientv3.LeaseID(g.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	run := e.waitRun(t, "u")
	e.requireInvariants(t, run)
	if run.Leader == task.Node || len(run.Terms) < 2 {
		t.Fatalf("run finished by %s with terms %+v; want another master than %s", run.Leader, run.Terms, task.Node)
	}

	before := caEpochRevisions(t, e.cli)
	close(st.release) // the old master wakes up and stamps
	select {
	case err := <-st.result:
		if !errors.Is(err, fencing.ErrNotLeader) {
			t.Fatalf("the deposed master's epochs-ca ended with %v, want %v", err, fencing.ErrNotLeader)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the deposed master's hook never returned")
	}
	if after := caEpochRevisions(t, e.cli); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("the deposed master stamped after losing its lease")
	}
}

func caEpochRevisions(t *testing.T, cli *clientv3.Client) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, scope := range []string{"maps-ca", "chocks-ca"} {
		resp, err := cli.Get(context.Background(), "/epochs/"+scope+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = kv.ModRevision
		}
	}
	return out
}
