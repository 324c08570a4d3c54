package upgrade_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/upgrade"
)

// A step's last progress is written after every earlier flush of it has
// returned. The ticker's flush of an older progress is held inside its
// write; the step ends meanwhile. A worker that wrote the last progress
// without waiting for that flush would send it while the older one is
// still in flight, and the older one could then land last and undo it.
// (The fixed worker waits for the held flush, which is let go after a
// moment: that wait only lets the test end, it judges no speed.)
func TestLastProgressWaitsForTheTickersFlush(t *testing.T) {
	m := embed.NewTestMember(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	cli := newClient(t, m.Endpoints())
	hold := &holdingKV{KV: cli.KV, key: upgrade.DefaultKeys.NodeState("flush", "node-1"), step: "epochs-nodelocal", held: make(chan struct{})}
	cli.KV = hold // the sidecar's store writes its progress through it

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &twoReports{name: "epochs-nodelocal", tickHeld: hold.held}
	var hs []hooks.Hook
	for hn, at := range planHooks {
		if hn == h.name {
			hs = append(hs, h)
			continue
		}
		hs = append(hs, &fakeHook{name: hn, at: at, writer: admin, items: 1})
	}
	reg, err := hooks.NewRegistry(hs)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := upgrade.New(cli, reg, upgrade.Config{Node: "node-1", SessionTTL: 2, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); sc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	control(t, admin, `{"id":"flush","action":"upgrade","mode":"nodelocal","nodes":["node-1"]}`)
	run := waitRun(t, admin, "flush", upgrade.StateDone, upgrade.StateFailed)
	if run.State != upgrade.StateDone {
		t.Fatalf("run ended %s: %s", run.State, run.Error)
	}
	if err := hold.overtaken(); err != nil {
		t.Fatal(err)
	}
	for _, s := range run.Steps {
		if s.Name == h.name && s.Done != 2 {
			t.Fatalf("%s recorded %d done, its last progress said 2", s.Name, s.Done)
		}
	}
}

// twoReports reports one item done, waits until the ticker's flush of it
// is held in its write, reports two and returns.
type twoReports struct {
	name     string
	tickHeld chan struct{}
}

func (h *twoReports) Name() string               { return h.name }
func (h *twoReports) Placement() hooks.Placement { return hooks.EveryNode }
func (h *twoReports) Run(ctx context.Context, t hooks.Task) error {
	t.Progress(hooks.Progress{Done: 1, Total: 2})
	select {
	case <-h.tickHeld:
	case <-ctx.Done():
		return ctx.Err()
	}
	t.Progress(hooks.Progress{Done: 2, Total: 2})
	return nil
}

// holdingKV holds the first write of a node's steps that records step at
// one item done, until a later write of that step's progress comes (which
// it notes: the earlier flush was overtaken) or a moment has passed.
type holdingKV struct {
	clientv3.KV
	key  string // the node's steps
	step string
	held chan struct{} // closed once the write is held

	mu      sync.Mutex
	holding bool
	held1   bool
	later   chan struct{}
	overtok bool
}

func (k *holdingKV) Txn(ctx context.Context) clientv3.Txn {
	return &holdingTxn{Txn: k.KV.Txn(ctx), kv: k}
}

func (k *holdingKV) overtaken() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.held1 {
		return errTest("no flush of one item done was ever written")
	}
	if k.overtok {
		return errTest("the step's last progress was written while the ticker's flush of an older one was still in flight")
	}
	return nil
}

type errTest string

func (e errTest) Error() string { return string(e) }

type holdingTxn struct {
	clientv3.Txn
	kv  *holdingKV
	ops []clientv3.Op
}

func (t *holdingTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }
func (t *holdingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *holdingTxn) Commit() (*clientv3.TxnResponse, error) {
	k := t.kv
	done, running := t.progress()
	k.mu.Lock()
	switch {
	case running && done == 1 && !k.held1:
		k.held1, k.holding, k.later = true, true, make(chan struct{})
		later := k.later
		k.mu.Unlock()
		close(k.held)
		select {
		case <-later:
		case <-time.After(500 * time.Millisecond):
		}
		k.mu.Lock()
		k.holding = false
		k.mu.Unlock()
	case done == 2 && k.holding:
		k.overtok, k.holding = true, false
		close(k.later)
		k.mu.Unlock()
	default:
		k.mu.Unlock()
	}
	return t.Txn.Commit()
}

// progress reads the step's done count and state from a write of a node's
// steps; done is -1 for any other write.
func (t *holdingTxn) progress() (done int64, running bool) {
	for _, op := range t.ops {
		if !op.IsPut() || string(op.KeyBytes()) != t.kv.key {
			continue
		}
		var ns upgrade.NodeSteps
		if json.Unmarshal(op.ValueBytes(), &ns) != nil {
			continue
		}
		for _, s := range ns.Steps {
			if s.Name == t.kv.step {
				return s.Done, s.State == upgrade.StateRunning
			}
		}
	}
	return -1, false
}
