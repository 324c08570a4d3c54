package libmap_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// seededV2 starts a member holding a seeded v2 installation, epochs cache
// included.
func seededV2(t *testing.T) (*embed.Member, clientv2.KeysAPI, *seed.Manifest) {
	t.Helper()
	m := embed.NewTestMember(t)
	keys := embed.NewTestV2(t, m.Endpoints())
	man, err := seed.Run(context.Background(), keys, seed.Config{Docs: 30, Objects: 120, Nodes: seed.Nodes(2), Seed: 9, Layout: seed.Layout{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Get(context.Background(), "/epochs/chocks-idx/node-1/0", nil); err != nil {
		t.Fatalf("the seed wrote no v2 epochs: %v", err)
	}
	return m, keys, man
}

func gone(t *testing.T, keys clientv2.KeysAPI, key string) bool {
	t.Helper()
	_, err := keys.Get(context.Background(), key, nil)
	if err != nil && !clientv2.IsKeyNotFound(err) {
		t.Fatal(err)
	}
	return clientv2.IsKeyNotFound(err)
}

func TestEtcdctlRemovesSeededV2Epochs(t *testing.T) {
	etcdctl := embed.NeedEtcdctl34(t) // the guide's command is the real etcdctl
	m, keys, man := seededV2(t)
	// The guide's command, with the endpoint a Rok node has in its environment.
	cmd := exec.Command(etcdctl, "--endpoints", m.ClientURL(), "rm", "-r", "/epochs")
	cmd.Env = append(os.Environ(), "ETCDCTL_API=2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ETCDCTL_API=2 etcdctl rm -r /epochs: %v\n%s", err, out)
	}
	if !gone(t, keys, "/epochs") {
		t.Fatal("etcdctl left /epochs in place")
	}
	if gone(t, keys, man.Buckets[0]) {
		t.Fatal("etcdctl rm -r /epochs removed a Gateway document")
	}
}

func TestV2CleanupHookRemovesSeededV2Epochs(t *testing.T) {
	m, keys, man := seededV2(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := context.Background()
	put, err := cli.Put(ctx, "/rok/upgrade/leader/1", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	h := libmap.NewV2CleanupHook(keys, cli, "")
	if h.Name() != "v2-epochs-cleanup" || h.Placement() != hooks.Leader {
		t.Fatalf("%s %s", h.Name(), h.Placement())
	}

	// A deposed master deletes nothing.
	stale := fencing.NewGuard("/rok/upgrade/leader/1", put.Header.Revision-1)
	if err := h.Run(ctx, hooks.Task{Guard: stale}); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed master: %v", err)
	}
	if gone(t, keys, "/epochs") {
		t.Fatal("a deposed master deleted /epochs")
	}

	guard := fencing.NewGuard("/rok/upgrade/leader/1", put.Header.Revision)
	var notes []string
	task := hooks.Task{Guard: guard, Report: func(p hooks.Progress) { notes = append(notes, p.Note) }}
	if err := h.Run(ctx, task); err != nil {
		t.Fatal(err)
	}
	if !gone(t, keys, "/epochs") || gone(t, keys, man.Buckets[0]) {
		t.Fatal("the hook did not remove exactly /epochs")
	}
	// Idempotent: a new master re-running the step succeeds.
	if err := h.Run(ctx, task); err != nil {
		t.Fatalf("re-run over a removed /epochs: %v", err)
	}
	if last := notes[len(notes)-1]; !strings.Contains(last, "already gone") {
		t.Fatalf("re-run progress note %q", last)
	}
}
