package gc_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
)

func TestFenceHooksSetAndLiftTheRunsFenceUnderTheLeaderGuard(t *testing.T) {
	tr := newTree(t)
	ctx := context.Background()
	put, err := tr.cli.Put(ctx, "/rok/upgrade/leader/abc", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	task := hooks.Task{RunID: "r1", Node: "node-1", Guard: fencing.NewGuard("/rok/upgrade/leader/abc", put.Header.Revision)}
	fence, unfence := gc.NewFenceHook(tr.cli), gc.NewUnfenceHook(tr.cli)
	if fence.Name() != "gc-fence" || fence.Placement() != hooks.Leader || unfence.Name() != "gc-unfence" || unfence.Placement() != hooks.Leader {
		t.Fatal("hook names or placements")
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := fence.Run(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := fencing.NewFence(tr.cli).Get(ctx)
	if h == nil || h.Holder != "upgrade/r1" {
		t.Fatalf("fence %+v, want held by upgrade/r1", h)
	}
	// A GC now refuses.
	if _, err := gc.Run(ctx, tr.cli, tr.config(false)); !errors.Is(err, fencing.ErrFenced) {
		t.Fatalf("GC under the run's fence: %v", err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if err := unfence.Run(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if h, _ := fencing.NewFence(tr.cli).Get(ctx); h != nil {
		t.Fatalf("fence still set: %+v", h)
	}

	// An operator's fence: gc-fence fails naming them, gc-unfence leaves it.
	if _, err := fencing.NewFence(tr.cli).Set(ctx, "alice", "disk swap"); err != nil {
		t.Fatal(err)
	}
	if err := fence.Run(ctx, task); !errors.Is(err, fencing.ErrHeld) || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("gc-fence over an operator's fence: %v", err)
	}
	if err := unfence.Run(ctx, task); err != nil {
		t.Fatal(err)
	}
	if h, _ := fencing.NewFence(tr.cli).Get(ctx); h == nil || h.Holder != "alice" {
		t.Fatalf("gc-unfence lifted an operator's fence: %+v", h)
	}
	fencing.NewFence(tr.cli).Release(ctx, "alice")

	// A deposed leader sets nothing.
	if _, err := tr.cli.Delete(ctx, "/rok/upgrade/leader/abc"); err != nil {
		t.Fatal(err)
	}
	if err := fence.Run(ctx, task); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed leader's gc-fence: %v", err)
	}
	if h, _ := fencing.NewFence(tr.cli).Get(ctx); h != nil {
		t.Fatalf("a deposed leader set the fence: %+v", h)
	}
	args, _ := json.Marshal(gc.FenceArgs{Holder: "ops", Reason: "why"})
	if err := fence.Run(ctx, hooks.Task{RunID: "r2", Args: append(args[:len(args)-1], []byte(`,"extra":1}`)...)}); err == nil {
		t.Fatal("unknown argument accepted")
	}
}

// Before the upgrade objects carry v2 epochs only. gc-precollect collects
// the unreachable ones whose v2 epoch predates the run, with a v2
// compare-and-delete, and keeps one a pre-0.14 composer touched since.
func TestPrecollectCollectsObjectsWithOldV2Epochs(t *testing.T) {
	tr := newTree(t)
	ctx := context.Background()
	tr.volume(1, 1)
	for _, n := range []uint64{2, 3, 4} {
		tr.chock(n)
	}
	setV2 := func(name string) {
		if _, err := tr.v2.Set(ctx, "/epochs/chocks-idx/node-1/"+name, "17", nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"1", "2", "3"} {
		setV2(n)
	}
	// chock 4 has no epoch anywhere; chock 3 is touched in v2 by a
	// pre-0.14 composer once the run has begun.
	defer gc.SetTestHookCollect(func(path string) {
		if strings.HasSuffix(path, "/chocks-idx/3") {
			setV2("3")
		}
	})()
	h := gc.NewPrecollectHook(tr.cli, tr.v2, tr.layout.Nodelocal)
	if h.Name() != "gc-precollect" || h.Placement() != hooks.EveryNode {
		t.Fatal("name or placement")
	}
	var last hooks.Progress
	if err := h.Run(ctx, hooks.Task{RunID: "r1", Node: "node-1", Report: func(p hooks.Progress) { last = p }}); err != nil {
		t.Fatal(err)
	}
	tr.gone(libmap.ChocksIdx, "2")
	if _, err := tr.v2.Get(ctx, "/epochs/chocks-idx/node-1/2", nil); !clientv2.IsKeyNotFound(err) {
		t.Fatalf("v2 epoch of a collected chock: %v", err)
	}
	tr.kept(libmap.ChocksIdx, "1", "3", "4")
	if tr.epoch(libmap.ChocksIdx, "4") == "" {
		t.Fatal("the epoch-less chock was not stamped")
	}
	if !strings.Contains(last.Note, "1 deleted") {
		t.Fatalf("last progress %+v", last)
	}

	// Under a fence it is skipped, not failed.
	if _, err := fencing.NewFence(tr.cli).Set(ctx, "upgrade/r1", ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Run(ctx, hooks.Task{RunID: "r1", Node: "node-1", Report: func(p hooks.Progress) { last = p }}); err != nil || !strings.Contains(last.Note, "fenced") {
		t.Fatalf("precollect under a fence: %v, %+v", err, last)
	}
}

func TestPrecollectCAIsALeaderSweepGuardedByTheTerm(t *testing.T) {
	tr := newTree(t)
	ctx := context.Background()
	keep := tr.caChock("keep")
	m := tr.caMap(keep)
	tr.versionV2("b/o/v1", m)
	junk := tr.caChock("junk")
	for _, h := range []string{keep, m, junk} {
		sc := libmap.ChocksCA
		if h == m {
			sc = libmap.MapsCA
		}
		if _, err := tr.v2.Set(ctx, "/epochs/"+string(sc)+"/"+h, "3", nil); err != nil {
			t.Fatal(err)
		}
	}
	put, err := tr.cli.Put(ctx, "/rok/upgrade/leader/abc", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	h := gc.NewPrecollectCAHook(tr.cli, tr.v2, tr.layout.Local)
	if h.Name() != "gc-precollect-ca" || h.Placement() != hooks.Leader {
		t.Fatal("name or placement")
	}
	task := hooks.Task{RunID: "r1", Node: "node-1", Guard: fencing.NewGuard("/rok/upgrade/leader/abc", put.Header.Revision)}
	if err := h.Run(ctx, task); err != nil {
		t.Fatal(err)
	}
	tr.gone(libmap.ChocksCA, junk)
	tr.kept(libmap.ChocksCA, keep)
	tr.kept(libmap.MapsCA, m)

	// A deposed leader's sweep deletes nothing.
	junk2 := tr.caChock("junk2")
	if _, err := tr.v2.Set(ctx, "/epochs/chocks-ca/"+junk2, "3", nil); err != nil {
		t.Fatal(err)
	}
	tr.cli.Delete(ctx, "/rok/upgrade/leader/abc")
	if err := h.Run(ctx, task); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed leader's precollect: %v", err)
	}
	tr.kept(libmap.ChocksCA, junk2)
}
