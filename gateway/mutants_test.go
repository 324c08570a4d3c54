package gateway

import (
	"context"
	"errors"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
)

// The leader guard of the ledger and of republish, each tried with a term
// that ended (issue 20's mutants ledger-guard and republish-guard): the
// write is refused with ErrNotLeader and nothing lands; the same write
// under a live term lands, so the refusal is the guard's.

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
