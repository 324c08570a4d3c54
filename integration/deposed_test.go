package integration

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/upgrade"
)

// TestMasterLostDuringEpochsCA deposes a master before its stamper starts,
// so the stamper's own check refuses it and it writes nothing at all. This
// test deposes the master later, with its work still ahead: its stamper
// has checked the term and is sending its first write when the term ends
// (its lease revoked, as etcd does when a paused master misses its
// keepalives). Its hook runs on regardless of cancellation, as a process
// that has not noticed yet. Every stamp it then sends must be refused by
// the leader guard in the transaction itself, and nothing it wrote may
// land; the new master finishes the run.
func TestDeposedMasterStampIsRefused(t *testing.T) {
	e := newEnv(t, 200, 3000)
	d := &deposal{cli: e.cli}
	for i := range e.nodes {
		e.startSidecar(t, i,
			fx.Decorate(func(cli *clientv3.Client) *libmap.Cache { return libmap.New(&deposingKV{KV: cli}) }),
			markFirstRun(upgrade.StepCA, d))
	}
	e.waitLive(t, 3)
	if _, err := e.cli.Put(context.Background(), "/rok/upgrade/control", `{"id":"u","action":"upgrade"}`); err != nil {
		t.Fatal(err)
	}
	run := e.waitRun(t, "u")
	var hookErr error
	select {
	case hookErr = <-d.result:
	case <-time.After(60 * time.Second):
		t.Fatal("the first epochs-ca never returned")
	}
	d.mu.Lock()
	attempts, landed, revokeErr := d.attempts, d.landed, d.revokeErr
	d.mu.Unlock()
	if revokeErr != nil {
		t.Fatalf("deposing the master: %v", revokeErr)
	}
	if attempts == 0 {
		t.Fatal("the deposed master sent no stamp after its term ended: the test tried nothing")
	}
	if landed > 0 {
		t.Fatalf("the deposed master's stamps landed after its term ended: %d keys in %d transactions", landed, attempts)
	}
	if !errors.Is(hookErr, fencing.ErrNotLeader) {
		t.Fatalf("the deposed master's epochs-ca ended with %v, want %v", hookErr, fencing.ErrNotLeader)
	}
	e.requireInvariants(t, run)
	if len(run.Terms) < 2 {
		t.Fatalf("terms %+v: want the deposed master's and a new one", run.Terms)
	}
	t.Logf("the deposed master sent %d stamping transactions after its term ended; all refused", attempts)
}

// deposal is the first run of a step, cluster-wide: its context carries
// it, so deposingKV knows the transactions of that run from any other.
type deposal struct {
	cli    *clientv3.Client
	result chan error

	mu        sync.Mutex
	taken     bool
	term      fencing.Guard
	deposed   bool
	revokeErr error
	attempts  int // write transactions sent after the term ended
	landed    int // keys they wrote
}

type deposalKey struct{}

// markFirstRun wraps hook name: its first run anywhere carries d in its
// context and ignores cancellation.
func markFirstRun(name string, d *deposal) fx.Option {
	d.result = make(chan error, 1)
	return fx.Decorate(func(reg *hooks.Registry) (*hooks.Registry, error) {
		var hs []hooks.Hook
		for _, n := range reg.Names() {
			h, _ := reg.Get(n)
			if n == name {
				h = firstRun{Hook: h, d: d}
			}
			hs = append(hs, h)
		}
		return hooks.NewRegistry(hs)
	})
}

type firstRun struct {
	hooks.Hook
	d *deposal
}

func (f firstRun) Run(ctx context.Context, t hooks.Task) error {
	f.d.mu.Lock()
	first := !f.d.taken
	f.d.taken = true
	if first {
		f.d.term = t.Guard
	}
	f.d.mu.Unlock()
	if !first {
		return f.Hook.Run(ctx, t)
	}
	err := f.Hook.Run(context.WithValue(context.WithoutCancel(ctx), deposalKey{}, f.d), t)
	f.d.result <- err
	return err
}

// deposingKV ends the term of the marked run right before its first
// stamping transaction reaches etcd, then counts what its transactions
// wrote.
type deposingKV struct{ clientv3.KV }

func (k *deposingKV) Txn(ctx context.Context) clientv3.Txn {
	d, _ := ctx.Value(deposalKey{}).(*deposal)
	if d == nil {
		return k.KV.Txn(ctx)
	}
	return &deposingTxn{Txn: k.KV.Txn(ctx), ctx: ctx, d: d}
}

type deposingTxn struct {
	clientv3.Txn
	ctx  context.Context
	d    *deposal
	puts int
}

func (t *deposingTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *deposingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		if op.IsPut() && strings.HasPrefix(string(op.KeyBytes()), "/epochs/") {
			t.puts++
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *deposingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *deposingTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.puts == 0 {
		return t.Txn.Commit()
	}
	d := t.d
	d.mu.Lock()
	if !d.deposed {
		d.deposed = true
		d.revokeErr = revokeTerm(d.cli, d.term)
	}
	d.mu.Unlock()
	resp, err := t.Txn.Commit()
	d.mu.Lock()
	d.attempts++
	if err == nil && resp.Succeeded {
		d.landed += t.puts
	}
	d.mu.Unlock()
	return resp, err
}

// revokeTerm revokes the lease of g's election key: the term ends.
func revokeTerm(cli *clientv3.Client, g fencing.Guard) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, g.Key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) != 1 || resp.Kvs[0].CreateRevision != g.Rev {
		return errors.New("the term had ended already: " + g.String())
	}
	_, err = cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	return err
}
