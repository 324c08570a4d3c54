package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/upgrade"
)

// fakeHook writes `items` keys /test/ran/<hook>/<node>/<i>, each in its own
// guarded transaction, and can stop after its first write until released.
type fakeHook struct {
	name   string
	at     hooks.Placement
	writer *clientv3.Client
	items  int
	gate   *gate
	fail   error

	mu       sync.Mutex
	notLeads int // writes refused by the leader guard
}

func (h *fakeHook) Name() string               { return h.name }
func (h *fakeHook) Placement() hooks.Placement { return h.at }
func (h *fakeHook) Run(ctx context.Context, t hooks.Task) error {
	if h.fail != nil {
		return h.fail
	}
	if h.gate != nil && h.gate.paused {
		// A paused process does not notice its context until it has
		// written: only the leader guard can stop it.
		ctx = context.WithoutCancel(ctx)
	}
	for i := 0; i < h.items; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := fmt.Sprintf("/test/ran/%s/%s/%d", h.name, t.Node, i)
		resp, err := h.writer.Txn(ctx).If(t.Guard.Cmps()...).Then(clientv3.OpPut(key, t.Node)).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			if err := t.Guard.Check(ctx, h.writer); err != nil {
				h.mu.Lock()
				h.notLeads++
				h.mu.Unlock()
				return err
			}
		}
		t.Progress(hooks.Progress{Done: int64(i + 1), Total: int64(h.items)})
		if i == 0 && h.gate != nil {
			if err := h.gate.pass(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// gate holds up the first run that reaches it (the first master, say)
// until released; every later run passes.
type gate struct {
	// paused makes the held run deaf to cancellation, like a process
	// stopped by SIGSTOP: it wakes only when released.
	paused bool
	mu     sync.Mutex
	taken  bool
	ch     chan struct{}
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) pass(ctx context.Context) error {
	g.mu.Lock()
	first := !g.taken
	g.taken = true
	g.mu.Unlock()
	if !first {
		return nil
	}
	if g.paused {
		<-g.ch
		return nil
	}
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) release() { close(g.ch) }

type node struct {
	name   string
	cli    *clientv3.Client
	writer *clientv3.Client
	hooks  map[string]*fakeHook
	cancel context.CancelFunc
	done   chan struct{}
	sc     *upgrade.Sidecar
}

var planHooks = map[string]hooks.Placement{
	"gc-precollect": hooks.EveryNode, "gc-precollect-ca": hooks.Leader,
	"gc-fence": hooks.Leader, "gw-migrate": hooks.Leader, "epochs-nodelocal": hooks.EveryNode,
	"epochs-ca": hooks.Leader, "epochs-all": hooks.OneNode, "v2-epochs-cleanup": hooks.Leader,
	"gc-unfence": hooks.Leader,
}

func startNode(t *testing.T, eps []string, name string, tweak func(map[string]*fakeHook)) *node {
	t.Helper()
	n := &node{name: name, cli: newClient(t, eps), writer: embed.NewTestClient(t, eps), hooks: map[string]*fakeHook{}}
	var hs []hooks.Hook
	for hn, at := range planHooks {
		h := &fakeHook{name: hn, at: at, writer: n.writer, items: 5}
		n.hooks[hn] = h
	}
	if tweak != nil {
		tweak(n.hooks)
	}
	for _, h := range n.hooks {
		hs = append(hs, h)
	}
	reg, err := hooks.NewRegistry(hs)
	if err != nil {
		t.Fatal(err)
	}
	n.sc, err = upgrade.New(n.cli, reg, upgrade.Config{Node: name, SessionTTL: 2, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
		FlushInterval: 50 * time.Millisecond, RetryBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() { defer close(n.done); n.sc.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	n.cancel()
	<-n.done
}

// newClient is a client the test may close to cut a sidecar off: its
// session keepalives stop, as when the process is paused or partitioned.
func newClient(t *testing.T, eps []string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func waitMembers(t *testing.T, cli *clientv3.Client, n int) {
	t.Helper()
	waitFor(t, "members", func() bool {
		m, err := upgrade.LiveMembers(context.Background(), cli, upgrade.DefaultKeys)
		return err == nil && len(m) == n
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			dumpRuns(t)
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var dumpCli *clientv3.Client

func dumpRuns(t *testing.T) {
	if dumpCli == nil {
		return
	}
	resp, err := dumpCli.Get(context.Background(), "/rok/upgrade/", clientv3.WithPrefix())
	if err != nil {
		t.Logf("dump: %v", err)
		return
	}
	for _, kv := range resp.Kvs {
		t.Logf("%s = %s", kv.Key, kv.Value[:min(len(kv.Value), 300)])
	}
}

func waitRun(t *testing.T, cli *clientv3.Client, id string, states ...string) *upgrade.Run {
	t.Helper()
	var run *upgrade.Run
	waitFor(t, "run "+id+" to reach "+strings.Join(states, "|"), func() bool {
		r, err := upgrade.NewStore(cli, upgrade.DefaultKeys).View(context.Background(), id)
		if err != nil {
			return false
		}
		run = r
		for _, s := range states {
			if r.State == s {
				return true
			}
		}
		return false
	})
	return run
}

func control(t *testing.T, cli *clientv3.Client, v string) int64 {
	t.Helper()
	resp, err := cli.Put(context.Background(), upgrade.DefaultKeys.Control(), v)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func ranOn(t *testing.T, cli *clientv3.Client, hook string) map[string]int {
	t.Helper()
	resp, err := cli.Get(context.Background(), "/test/ran/"+hook+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, kv := range resp.Kvs {
		out[string(kv.Value)]++
	}
	return out
}

func TestNodelocalRunEndsDoneWithStepsWhereTheyBelong(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	dumpCli = admin
	names := []string{"node-1", "node-2", "node-3"}
	for _, n := range names {
		startNode(t, m.Endpoints(), n, nil)
	}
	waitMembers(t, admin, 3)
	control(t, admin, `{"id":"upgrade-0.14","action":"upgrade","mode":"nodelocal","nodes":["node-1","node-2","node-3"]}`)
	run := waitRun(t, admin, "upgrade-0.14", upgrade.StateDone, upgrade.StateFailed)
	if run.State != upgrade.StateDone {
		t.Fatalf("run ended %s: %s", run.State, run.Error)
	}
	var order []string
	for _, s := range run.Steps {
		if len(order) == 0 || order[len(order)-1] != s.Name {
			order = append(order, s.Name)
		}
		if s.State != upgrade.StateDone || s.Done != 5 || s.Total != 5 {
			t.Errorf("step %s on %s: %s %d/%d", s.Name, s.Node, s.State, s.Done, s.Total)
		}
	}
	want := "gc-fence gw-migrate epochs-nodelocal epochs-ca v2-epochs-cleanup gc-unfence"
	if strings.Join(order, " ") != want {
		t.Fatalf("steps ran as %v, want %s", order, want)
	}
	for _, n := range names {
		if got := ranOn(t, admin, "epochs-nodelocal")[n]; got != 5 {
			t.Errorf("epochs-nodelocal wrote %d items on %s, want 5", got, n)
		}
	}
	ca := ranOn(t, admin, "epochs-ca")
	if len(ca) != 1 || ca[run.Leader] != 5 {
		t.Errorf("epochs-ca ran on %v, want only the leader %s", ca, run.Leader)
	}
	if len(ranOn(t, admin, "epochs-all")) != 0 || len(ranOn(t, admin, "gc-precollect")) != 0 {
		t.Error("steps outside the plan ran")
	}
	if len(run.Terms) == 0 || run.Terms[0].Node != run.Leader {
		t.Errorf("terms %+v do not record the leader %s", run.Terms, run.Leader)
	}

	// Writing the same id again is idempotent: nothing runs twice. Judged
	// once the master has handled the write (the record names its revision).
	rev := control(t, admin, `{"id":"upgrade-0.14","action":"upgrade","mode":"nodelocal","nodes":["node-1","node-2","node-3"]}`)
	var again *upgrade.Run
	waitFor(t, "the master to handle the re-write", func() bool {
		r, err := upgrade.NewStore(admin, upgrade.DefaultKeys).View(context.Background(), "upgrade-0.14")
		again = r
		return err == nil && r.ControlRev == rev
	})
	if again.State != upgrade.StateDone || !again.Finished.Equal(run.Finished) {
		t.Fatalf("re-write changed a finished run: %s, finished %v → %v", again.State, run.Finished, again.Finished)
	}
	if got := ranOn(t, admin, "gc-fence")[run.Leader]; got != 5 {
		t.Fatalf("gc-fence ran again on a re-write: %d writes", got)
	}
}

func TestLocalModeRunsEpochsAllOnItsNode(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	dumpCli = admin
	startNode(t, m.Endpoints(), "solo", nil)
	waitMembers(t, admin, 1)
	control(t, admin, `{"id":"local-1","action":"upgrade","mode":"local","precollect":true}`)
	run := waitRun(t, admin, "local-1", upgrade.StateDone, upgrade.StateFailed)
	if run.State != upgrade.StateDone {
		t.Fatalf("run %s: %s", run.State, run.Error)
	}
	if ranOn(t, admin, "epochs-all")["solo"] != 5 || len(ranOn(t, admin, "epochs-nodelocal")) != 0 {
		t.Fatal("local mode must run epochs-all, not epochs-nodelocal")
	}
	if ranOn(t, admin, "gc-precollect")["solo"] != 5 {
		t.Fatal("precollect did not run")
	}
}

func TestBadControlValuesAreRejectedAndNothingRuns(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	dumpCli = admin
	startNode(t, m.Endpoints(), "node-1", nil)
	startNode(t, m.Endpoints(), "node-2", nil)
	waitMembers(t, admin, 2)
	cases := []struct{ id, value, reason string }{
		{"", `{"id":"bad-json","action":"upgrade"`, "not a JSON"},
		{"", `hello`, "not a JSON"},
		{"unknown-field", `{"id":"unknown-field","action":"upgrade","turbo":true}`, "unknown field"},
		{"", `{"id":"","action":"upgrade"}`, "id"},
		{"wrong-action", `{"id":"wrong-action","action":"downgrade"}`, "action"},
		{"wrong-mode", `{"id":"wrong-mode","action":"upgrade","mode":"global"}`, "mode"},
		{"unknown-node", `{"id":"unknown-node","action":"upgrade","nodes":["node-1","node-9"]}`, "unknown node \"node-9\""},
		{"local-two", `{"id":"local-two","action":"upgrade","mode":"local"}`, "local mode"},
		{"unknown-hook", `{"id":"unknown-hook","action":"task","hook":"rm-rf"}`, "unknown hook"},
		{"big", `{"id":"big","action":"upgrade","nodes":["` + strings.Repeat("x", upgrade.MaxRequestBytes) + `"]}`, "bytes"},
	}
	for _, tc := range cases {
		rev := control(t, admin, tc.value)
		id := tc.id
		if id == "" {
			id = fmt.Sprintf("rejected-%d", rev)
		}
		run := waitRun(t, admin, id, upgrade.StateRejected, upgrade.StateRunning, upgrade.StateDone)
		if run.State != upgrade.StateRejected || !strings.Contains(run.Error, tc.reason) {
			t.Errorf("%s: state %s error %q, want rejected mentioning %q", tc.value[:min(60, len(tc.value))], run.State, run.Error, tc.reason)
		}
	}
	if got := ranOn(t, admin, "gc-fence"); len(got) != 0 {
		t.Fatalf("a rejected request set the fence: %v", got)
	}
}

func TestNewLeaderResumesAndTheDeposedOneWritesNothing(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	dumpCli = admin
	g := newGate()
	g.paused = true
	nodes := map[string]*node{}
	for _, name := range []string{"node-1", "node-2", "node-3"} {
		nodes[name] = startNode(t, m.Endpoints(), name, func(h map[string]*fakeHook) {
			h["epochs-ca"].gate = g
			h["epochs-ca"].items = 20
		})
	}
	waitMembers(t, admin, 3)
	control(t, admin, `{"id":"u","action":"upgrade"}`)
	var first string
	waitFor(t, "epochs-ca to start", func() bool {
		for n, c := range ranOn(t, admin, "epochs-ca") {
			if c > 0 {
				first = n
				return true
			}
		}
		return false
	})
	old := nodes[first]
	// Cut the old master off etcd: its session keepalives stop, as when the
	// process is paused. Its hook's own client still works, like a process
	// that wakes up after its lease expired.
	old.cli.Close()
	run := waitRun(t, admin, "u", upgrade.StateDone, upgrade.StateFailed)
	if run.State != upgrade.StateDone {
		t.Fatalf("run ended %s: %s", run.State, run.Error)
	}
	if run.Leader == first {
		t.Fatalf("the cut-off master %s still leads", first)
	}
	beforeWake := ranOn(t, admin, "epochs-ca")[first]
	g.release() // the old master wakes up and carries on writing
	waitFor(t, "the old master's write to be refused", func() bool {
		h := old.hooks["epochs-ca"]
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.notLeads > 0
	})
	if after := ranOn(t, admin, "epochs-ca")[first]; after != beforeWake {
		t.Fatalf("the deposed master wrote %d items after losing its lease", after-beforeWake)
	}
	if got := ranOn(t, admin, "epochs-ca")[run.Leader]; got != 20 {
		t.Fatalf("the new master wrote %d of 20 items", got)
	}
	if len(run.Terms) < 2 {
		t.Fatalf("terms %+v: want the old and the new master", run.Terms)
	}
}

func TestAbortStopsTheRunAndResumeFinishesIt(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	dumpCli = admin
	g := newGate()
	for _, name := range []string{"node-1", "node-2"} {
		startNode(t, m.Endpoints(), name, func(h map[string]*fakeHook) { h["epochs-nodelocal"].gate = g })
	}
	waitMembers(t, admin, 2)
	control(t, admin, `{"id":"u","action":"upgrade"}`)
	waitFor(t, "epochs-nodelocal to start", func() bool { return len(ranOn(t, admin, "epochs-nodelocal")) == 2 })
	control(t, admin, `{"id":"u","action":"abort"}`)
	run := waitRun(t, admin, "u", upgrade.StateAborted)
	waitFor(t, "node steps to stop", func() bool {
		r, _ := upgrade.NewStore(admin, upgrade.DefaultKeys).View(context.Background(), "u")
		for _, s := range r.Steps {
			if s.Name == "epochs-nodelocal" && s.State == upgrade.StateRunning {
				return false
			}
		}
		return true
	})
	if ranOn(t, admin, "gc-unfence")[run.Leader] != 0 {
		t.Fatal("abort must keep the fence: gc-unfence ran")
	}
	g.release()
	control(t, admin, `{"id":"u","action":"upgrade"}`)
	run = waitRun(t, admin, "u", upgrade.StateDone, upgrade.StateFailed)
	if run.State != upgrade.StateDone {
		t.Fatalf("resumed run ended %s: %s", run.State, run.Error)
	}
	if ranOn(t, admin, "gc-fence")[run.Terms[0].Node] != 5 {
		t.Fatal("the fence step ran again after resume (it was done)")
	}
}

func TestTaskRunsOneHookAndFailureIsRecorded(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	dumpCli = admin
	startNode(t, m.Endpoints(), "node-1", func(h map[string]*fakeHook) {
		h["gw-migrate"].fail = errors.New("v3 key /rok/gw/x holds other bytes")
	})
	waitMembers(t, admin, 1)
	control(t, admin, `{"id":"t1","action":"task","hook":"gc-unfence","args":{"holder":"ops"}}`)
	run := waitRun(t, admin, "t1", upgrade.StateDone, upgrade.StateFailed)
	if run.State != upgrade.StateDone || len(run.Steps) != 1 || run.Steps[0].Name != "gc-unfence" {
		t.Fatalf("task run: %+v", run)
	}
	var args map[string]string
	if err := json.Unmarshal(run.Args, &args); err != nil || args["holder"] != "ops" {
		t.Fatalf("task args not kept: %s", run.Args)
	}
	control(t, admin, `{"id":"t2","action":"task","hook":"gw-migrate"}`)
	run = waitRun(t, admin, "t2", upgrade.StateDone, upgrade.StateFailed)
	if run.State != upgrade.StateFailed || !strings.Contains(run.Error, "holds other bytes") || run.Steps[0].Attempts != 3 {
		t.Fatalf("want failed after 3 attempts with the hook's error, got %s %q attempts %d", run.State, run.Error, run.Steps[0].Attempts)
	}
	_ = fencing.ErrNotLeader
}

func TestRunWaitsVisiblyForADownNodeAndAbortWorks(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	dumpCli = admin
	startNode(t, m.Endpoints(), "node-1", nil)
	gone := startNode(t, m.Endpoints(), "node-2", nil)
	waitMembers(t, admin, 2)
	gone.stop() // node-2 is known but its sidecar is down
	waitMembers(t, admin, 1)
	control(t, admin, `{"id":"u","action":"upgrade","nodes":["node-1","node-2"]}`)
	waitFor(t, "a visible reason for the wait", func() bool {
		r, _, err := upgrade.NewStore(admin, upgrade.DefaultKeys).Run(context.Background(), "u")
		if err != nil {
			return false
		}
		for _, s := range r.Steps {
			if s.Name == "epochs-nodelocal" && s.Node == "node-2" && strings.Contains(s.Note, "no sidecar is running") {
				return true
			}
		}
		return false
	})
	control(t, admin, `{"id":"u","action":"abort"}`)
	run := waitRun(t, admin, "u", upgrade.StateAborted)
	if !strings.Contains(run.Error, "fence stays") {
		t.Fatalf("abort reason %q should say the fence stays", run.Error)
	}
}
