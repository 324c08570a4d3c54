package fencing_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/fencing"
)

func TestRegisterRefusesWhenFencedNamingTheHolder(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	if _, err := fencing.NewFence(cli).Set(ctx, "upgrade/r1", "upgrade to 0.14"); err != nil {
		t.Fatal(err)
	}
	_, err := fencing.Register(ctx, cli, "node-1")
	if !errors.Is(err, fencing.ErrFenced) || !strings.Contains(err.Error(), "upgrade/r1") || !strings.Contains(err.Error(), "upgrade to 0.14") {
		t.Fatalf("want ErrFenced naming holder and reason, got %v", err)
	}
	resp, err := cli.Get(ctx, fencing.DefaultInstancePrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("a refused registration left %d instance keys (%v)", resp.Count, err)
	}
}

func TestRegisterIsOnePerNodeAndOneCAClusterWide(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	a, err := fencing.Register(ctx, cli, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	registered(t, cli, "/rok/gc/instances/node-1")
	if _, err := fencing.Register(ctx, cli, "node-1"); !errors.Is(err, fencing.ErrInstanceRunning) {
		t.Fatalf("second GC on node-1: want ErrInstanceRunning, got %v", err)
	}
	b, err := fencing.Register(ctx, cli, "node-2")
	if err != nil {
		t.Fatalf("GC on another node: %v", err)
	}
	defer b.Close(ctx)
	ca, err := fencing.RegisterCA(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	registered(t, cli, "/rok/gc/instances/_ca")
	if _, err := fencing.RegisterCA(ctx, cli); !errors.Is(err, fencing.ErrInstanceRunning) {
		t.Fatalf("second CA sweep: want ErrInstanceRunning, got %v", err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := fencing.Register(ctx, cli, "node-1")
	if err != nil {
		t.Fatalf("register after close: %v", err)
	}
	again.Close(ctx)
	ca.Close(ctx)
	for _, bad := range []string{"", "a/b", "_ca", "_x"} {
		if _, err := fencing.Register(ctx, cli, bad); err == nil {
			t.Errorf("node name %q accepted", bad)
		}
	}
}

func TestInstanceCmpFailsOnceItsLeaseIsGone(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	in, err := fencing.Register(ctx, cli, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	write := func() bool {
		resp, err := cli.Txn(ctx).If(in.Cmp()).Then(clientv3.OpDelete("/epochs/x")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	if !write() || in.Check(ctx) != nil {
		t.Fatal("instance write failed while registered")
	}
	// A GC paused past its lease: the lease expires (here: is revoked) and
	// the key goes with it.
	if _, err := cli.Revoke(ctx, in.Lease()); err != nil {
		t.Fatal(err)
	}
	if write() {
		t.Fatal("a GC whose lease is gone could still write")
	}
	if err := in.Check(ctx); !errors.Is(err, fencing.ErrInstanceLost) {
		t.Fatalf("want ErrInstanceLost, got %v", err)
	}
	// Another GC on the same node may now register; the old one stays out.
	next, err := fencing.Register(ctx, cli, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close(ctx)
	if write() {
		t.Fatal("the old instance's Cmp holds for the new instance's key")
	}
}

// registered fails the test unless key (an instance key) exists.
func registered(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	resp, err := cli.Get(context.Background(), key, clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 1 {
		t.Fatalf("instance key %s is not there", key)
	}
}
