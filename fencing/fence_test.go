package fencing_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
)

func newClient(t *testing.T) *clientv3.Client {
	t.Helper()
	m := embed.NewTestMember(t)
	return embed.NewTestClient(t, m.Endpoints())
}

func TestFenceSetIsIdempotentForItsHolderAndRefusesAnother(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	f := fencing.NewFence(cli)

	h, err := f.Set(ctx, "upgrade/r1", "upgrade to 0.14")
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.Set(ctx, "upgrade/r1", "a second reason")
	if err != nil {
		t.Fatalf("same holder again: %v", err)
	}
	if again.Rev != h.Rev || again.Reason != "upgrade to 0.14" {
		t.Fatalf("re-set changed the fence: first %+v, again %+v", h, again)
	}
	_, err = f.Set(ctx, "operator@host", "maintenance")
	if !errors.Is(err, fencing.ErrHeld) || !strings.Contains(err.Error(), `"upgrade/r1"`) {
		t.Fatalf("another holder: want ErrHeld naming upgrade/r1, got %v", err)
	}
	got, err := f.Get(ctx)
	if err != nil || got == nil || got.Holder != "upgrade/r1" || got.Rev != h.Rev {
		t.Fatalf("Get = %+v, %v; want holder upgrade/r1 at rev %d", got, err, h.Rev)
	}
	if err := f.Check(ctx); !errors.Is(err, fencing.ErrFenced) ||
		!strings.Contains(err.Error(), "upgrade/r1") || !strings.Contains(err.Error(), "upgrade to 0.14") {
		t.Fatalf("Check: want ErrFenced naming holder and reason, got %v", err)
	}
}

func TestFenceReleaseOnlyByHolderUnlessForced(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	f := fencing.NewFence(cli)
	if _, err := f.Set(ctx, "upgrade/r1", "upgrade"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Release(ctx, "operator@host"); !errors.Is(err, fencing.ErrHeld) || !strings.Contains(err.Error(), "upgrade/r1") {
		t.Fatalf("release by another: want ErrHeld naming the holder, got %v", err)
	}
	if h, _ := f.Get(ctx); h == nil {
		t.Fatal("a refused release lifted the fence")
	}
	released, err := f.Release(ctx, "operator@host", fencing.Force())
	if err != nil || !released {
		t.Fatalf("forced release: %v, %v", released, err)
	}
	if h, _ := f.Get(ctx); h != nil {
		t.Fatalf("fence still set after forced release: %+v", h)
	}
	released, err = f.Release(ctx, "upgrade/r1")
	if err != nil || released {
		t.Fatalf("release of an absent fence must be a no-op: %v, %v", released, err)
	}
	if err := f.Check(ctx); err != nil {
		t.Fatalf("Check with no fence: %v", err)
	}
}

func TestFenceAbsentCmpStopsAWriteOnceSet(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	f := fencing.NewFence(cli)
	del := func() bool {
		resp, err := cli.Txn(ctx).If(f.AbsentCmp()).Then(clientv3.OpPut("/work", "done")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	if !del() {
		t.Fatal("write failed with no fence")
	}
	if _, err := f.Set(ctx, "me", ""); err != nil {
		t.Fatal(err)
	}
	if del() {
		t.Fatal("write succeeded through a set fence")
	}
}

func TestFenceGuardedSetAndReleaseFailForAnEndedTerm(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	f := fencing.NewFence(cli)
	put, err := cli.Put(ctx, "/leader/a", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	g := fencing.NewGuard("/leader/a", put.Header.Revision)
	if _, err := f.Set(ctx, "upgrade/r1", "", fencing.WithGuard(g)); err != nil {
		t.Fatalf("guarded set during the term: %v", err)
	}
	if _, err := cli.Delete(ctx, "/leader/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Release(ctx, "upgrade/r1", fencing.WithGuard(g)); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("guarded release after the term: want ErrNotLeader, got %v", err)
	}
	if h, _ := f.Get(ctx); h == nil {
		t.Fatal("a deposed leader's release lifted the fence")
	}
	if _, err := f.Release(ctx, "upgrade/r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Set(ctx, "upgrade/r1", "", fencing.WithGuard(g)); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("guarded set after the term: want ErrNotLeader, got %v", err)
	}
	if h, _ := f.Get(ctx); h != nil {
		t.Fatalf("a deposed leader set the fence: %+v", h)
	}
	// An ended term is reported even when the fence is already as wanted.
	if _, err := f.Set(ctx, "upgrade/r1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Set(ctx, "upgrade/r1", "", fencing.WithGuard(g)); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("guarded re-set after the term: want ErrNotLeader, got %v", err)
	}
}

func TestFenceWrittenByHandStillFences(t *testing.T) {
	ctx := context.Background()
	cli := newClient(t)
	f := fencing.NewFence(cli, fencing.WithFenceKey("/custom/fence"))
	if _, err := cli.Put(ctx, "/custom/fence", "stop"); err != nil {
		t.Fatal(err)
	}
	err := f.Check(ctx)
	if !errors.Is(err, fencing.ErrFenced) || !strings.Contains(err.Error(), `"stop"`) {
		t.Fatalf("hand-written fence: want ErrFenced showing its value, got %v", err)
	}
	if _, err := f.Release(ctx, "me"); !errors.Is(err, fencing.ErrHeld) {
		t.Fatalf("want ErrHeld for an unknown holder, got %v", err)
	}
	if _, err := f.Release(ctx, "me", fencing.Force()); err != nil {
		t.Fatal(err)
	}
}
