package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
)

// The leader guard of the ledger, of republish and of the move's copy,
// each tried with a term that ended (issue 20's mutants ledger-guard,
// republish-guard, move-guard): the write is refused with ErrNotLeader and
// nothing lands; the same write under a live term lands, so the refusal is
// the guard's.

// terms returns a live term and one that has ended, on cli's cluster.
func terms(t *testing.T, cli *clientv3.Client) (live, ended fencing.Guard) {
	t.Helper()
	ctx := ctxT(t)
	old, err := cli.Put(ctx, "/rok/upgrade/leader/old", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "/rok/upgrade/leader/old"); err != nil {
		t.Fatal(err)
	}
	cur, err := cli.Put(ctx, "/rok/upgrade/leader/new", "node-2")
	if err != nil {
		t.Fatal(err)
	}
	return fencing.NewGuard("/rok/upgrade/leader/new", cur.Header.Revision),
		fencing.NewGuard("/rok/upgrade/leader/old", old.Header.Revision)
}

func TestLedgerRecordOfAnEndedTermWritesNothing(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := ctxT(t)
	live, ended := terms(t, cli)
	k := Key{App: "gw", Name: "0002_v3_store"}
	if err := NewRecorder(cli, nil, "", ended).Record(ctx, k, Record{Checksum: "x"}); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("a deposed master's ledger record: want ErrNotLeader, got %v", err)
	}
	if _, ok, err := NewRecorder(cli, nil, "", live).Get(ctx, k); err != nil || ok {
		t.Fatalf("a deposed master recorded %s as applied (%v)", k, err)
	}
	if err := NewRecorder(cli, nil, "", live).Record(ctx, k, Record{Checksum: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := NewRecorder(cli, nil, "", live).Get(ctx, k); err != nil || !ok {
		t.Fatalf("the master's record of %s is missing (%v)", k, err)
	}
}

func TestRepublishOfAnEndedTermWritesNothing(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := ctxT(t)
	live, ended := terms(t, cli)
	const key, doc = DefaultPrefix + "/buckets/alpha", `{"published": true, "syncing": false}`
	if _, err := cli.Put(ctx, key, doc); err != nil {
		t.Fatal(err)
	}
	if _, err := Republish(ctx, cli, nil, BucketsOptions{Guard: ended}); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("a deposed master's republish: want ErrNotLeader, got %v", err)
	}
	if got := v3Value(t, ctx, cli, key); got != doc {
		t.Fatalf("a deposed master rewrote bucket alpha: %s", got)
	}
	rep, err := Republish(ctx, cli, nil, BucketsOptions{Guard: live})
	if err != nil || rep.Changed != 1 {
		t.Fatalf("the master's republish: %+v, %v", rep, err)
	}
	if got := v3Value(t, ctx, cli, key); got == doc {
		t.Fatal("the master's republish left bucket alpha as it was")
	}
}

func v3Value(t *testing.T, ctx context.Context, cli *clientv3.Client, key string) string {
	t.Helper()
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("%s: %v", key, err)
	}
	return string(resp.Kvs[0].Value)
}

// The term ends after the move checked it and before its first copy
// transaction reaches etcd: every document write it sends is refused.
func TestMoveWhoseTermEndsMidCopyWritesNoDocument(t *testing.T) {
	e := newEnv(t, seedSize{docs: 300})
	ctx := ctxT(t)
	lead, err := e.cli.Put(ctx, "/rok/upgrade/leader/node-1", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	guard := fencing.NewGuard("/rok/upgrade/leader/node-1", lead.Header.Revision)
	cli := embed.NewTestClient(t, e.eps)
	end := &termEndingKV{KV: cli.KV, end: func() error { _, err := e.cli.Delete(ctx, guard.Key); return err }}
	cli.KV = end
	if _, err := Move(ctx, cli, e.kapi, MoveOptions{Guard: guard}); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("a move whose term ended: want ErrNotLeader, got %v", err)
	}
	end.mu.Lock()
	defer end.mu.Unlock()
	if end.err != nil || end.attempts == 0 {
		t.Fatalf("the term was not ended before a copy transaction (%d sent, %v)", end.attempts, end.err)
	}
	if end.landed > 0 {
		t.Fatalf("%d documents written after the term ended", end.landed)
	}
}

// termEndingKV runs end before the first transaction that puts documents
// under the Gateway prefix, then counts the documents such transactions
// write.
type termEndingKV struct {
	clientv3.KV
	end func() error

	mu       sync.Mutex
	ended    bool
	err      error
	attempts int
	landed   int
}

func (k *termEndingKV) Txn(ctx context.Context) clientv3.Txn {
	return &termEndingTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type termEndingTxn struct {
	clientv3.Txn
	kv   *termEndingKV
	docs int
}

func (t *termEndingTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *termEndingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		if op.IsPut() && strings.HasPrefix(string(op.KeyBytes()), DefaultPrefix+"/") {
			t.docs++
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *termEndingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *termEndingTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.docs == 0 {
		return t.Txn.Commit()
	}
	k := t.kv
	k.mu.Lock()
	if !k.ended {
		k.ended, k.err = true, k.end()
	}
	k.mu.Unlock()
	resp, err := t.Txn.Commit()
	k.mu.Lock()
	k.attempts++
	if err == nil && resp.Succeeded {
		k.landed += t.docs
	}
	k.mu.Unlock()
	return resp, err
}
