package fencing_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
)

const electionPrefix = "/rok/upgrade/leader/"

// guardedPut is a master-only write, made the way every leader hook makes
// it: through the batch writer with the term as its guard.
func guardedPut(ctx context.Context, kv clientv3.KV, g fencing.Guard, key, val string) error {
	w := batch.New(ctx, kv, batch.Config{Guard: g})
	if err := w.Add(batch.Put(key, val)); err != nil {
		return err
	}
	return w.Close()
}

func TestDeposedLeaderWriteFailsAfterNewLeaderIsElected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())

	s1, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	_, g1, err := fencing.Campaign(ctx, s1, electionPrefix, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := guardedPut(ctx, cli, g1, "/rok/upgrade/runs/r1/step", "by node-1"); err != nil {
		t.Fatalf("leader's write during its term: %v", err)
	}

	// node-1 loses its lease (an operator revoked it, or etcd expired it)
	// and node-2, campaigning meanwhile, wins.
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	won := make(chan fencing.Guard, 1)
	go func() {
		_, g2, err := fencing.Campaign(ctx, s2, electionPrefix, "node-2")
		if err != nil {
			t.Error(err)
		}
		won <- g2
	}()
	if err := s1.Close(); err != nil { // revokes node-1's lease
		t.Fatal(err)
	}
	g2 := <-won
	if g2 == g1 || g2 == (fencing.Guard{}) {
		t.Fatalf("node-2's term %v is not a new term (node-1 had %v)", g2, g1)
	}

	err = guardedPut(ctx, cli, g1, "/rok/upgrade/runs/r1/step", "by node-1, deposed")
	if !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed leader's write: want %q, got %v", fencing.ErrNotLeader, err)
	}
	if err := guardedPut(ctx, cli, g2, "/rok/upgrade/runs/r1/step", "by node-2"); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	resp, err := cli.Get(ctx, "/rok/upgrade/runs/r1/step")
	if err != nil || string(resp.Kvs[0].Value) != "by node-2" {
		t.Fatalf("step holds %q, want the new leader's write", resp.Kvs[0].Value)
	}
}

func TestPausedLeaderWhoseSessionExpiredCannotWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())

	// node-1 has its own connection: closing it stops the keepalives the
	// way a long GC pause or a partition does, without revoking the lease.
	cli1, err := clientv3.New(clientv3.Config{Endpoints: m.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := concurrency.NewSession(cli1, concurrency.WithTTL(1))
	if err != nil {
		t.Fatal(err)
	}
	_, g1, err := fencing.Campaign(ctx, s1, electionPrefix, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	cli1.Close() // node-1 pauses

	// node-2 campaigns: it waits for node-1's key to expire with its lease,
	// then wins. Nothing revoked anything.
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_, g2, err := fencing.Campaign(ctx, s2, electionPrefix, "node-2")
	if err != nil {
		t.Fatal(err)
	}
	if g2.Rev <= g1.Rev {
		t.Fatalf("node-2's term %v is not after node-1's %v", g2, g1)
	}

	// node-1 wakes up, reconnects, and carries on with its step.
	cli1b := embed.NewTestClient(t, m.Endpoints())
	err = guardedPut(ctx, cli1b, g1, "/rok/upgrade/runs/r1/step", "by node-1 after its pause")
	if !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("paused leader's write: want ErrNotLeader, got %v", err)
	}
	if err := g1.Check(ctx, cli1b); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("Check of the ended term: want ErrNotLeader, got %v", err)
	}
	resp, err := cli.Get(ctx, "/rok/upgrade/runs/r1/step", clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("the paused leader's write landed (%d keys, %v)", resp.Count, err)
	}
}

func TestCampaignRefusesATermThatEndedBeforeItWasHandedOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := newClient(t)
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // the session is already over
		t.Fatal(err)
	}
	if _, _, err := fencing.Campaign(ctx, s, electionPrefix, "node-1"); err == nil {
		t.Fatal("campaign with an expired session handed out a term")
	}
	resp, err := cli.Get(ctx, electionPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("an expired session left %d election keys (%v)", resp.Count, err)
	}
}

func TestCampaignPutsTermKeysUnderThePrefix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := newClient(t)
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, g, err := fencing.Campaign(ctx, s, electionPrefix, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s%x", electionPrefix, s.Lease()); g.Key != want {
		t.Fatalf("term key %q, want %q", g.Key, want)
	}
}
