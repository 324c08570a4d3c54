package gateway

import (
	"errors"
	"strings"
	"sync"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
)

// hookEnv is a seeded member with a raw v2 client for the hook.
func hookEnv(t *testing.T, size seedSize) (*testEnv, clientv2.Client) {
	m := embed.NewTestMember(t)
	c2 := embed.NewTestV2Client(t, m.Endpoints())
	kapi := clientv2.NewKeysAPI(c2)
	e := &testEnv{cli: embed.NewTestClient(t, m.Endpoints()), kapi: kapi, store: seed(t, kapi, DefaultPrefix, size)}
	return e, c2
}

func TestMigrateHookRunsUnderTheLeaderGuard(t *testing.T) {
	e, c2 := hookEnv(t, seedSize{docs: 400, ttls: 4, ledge: true})
	ctx := ctxT(t)
	lead, err := e.cli.Put(ctx, "/rok/upgrade/leader/node-1", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	guard := fencing.NewGuard("/rok/upgrade/leader/node-1", lead.Header.Revision)
	h := NewMigrateHook(e.cli, c2, Config{})
	if h.Name() != "gw-migrate" || h.Placement() != hooks.Leader {
		t.Fatalf("hook %s placed %s", h.Name(), h.Placement())
	}

	// Unknown arguments are refused before anything runs.
	err = h.Run(ctx, hooks.Task{Args: []byte(`{"republish":true,"forse":true}`), Guard: guard})
	if err == nil || !strings.Contains(err.Error(), "forse") {
		t.Fatalf("strict arguments: %v", err)
	}

	// A deposed leader writes nothing and says so.
	if _, err := e.cli.Delete(ctx, guard.Key); err != nil {
		t.Fatal(err)
	}
	err = h.Run(ctx, hooks.Task{Args: []byte(`{}`), Guard: guard})
	if !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed leader: want ErrNotLeader, got %v", err)
	}
	if got := e.v3Docs(t); len(got) != 0 {
		t.Errorf("a deposed leader wrote %d documents", len(got))
	}

	// The current leader migrates, reports progress, and re-publishes.
	lead, _ = e.cli.Put(ctx, "/rok/upgrade/leader/node-2", "node-2")
	guard = fencing.NewGuard("/rok/upgrade/leader/node-2", lead.Header.Revision)
	var mu sync.Mutex
	var last hooks.Progress
	var reports int
	err = h.Run(ctx, hooks.Task{Args: []byte(`{"republish": true}`), Guard: guard, Report: func(p hooks.Progress) {
		mu.Lock()
		defer mu.Unlock()
		reports++
		if p.Total > 0 {
			last = p
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.assertMoved(t, true)
	if reports == 0 || last.Done != last.Total || last.Total != int64(len(e.store.docs)) {
		t.Errorf("progress: %d reports, last %+v, want done = total = %d", reports, last, len(e.store.docs))
	}
	alpha := e.bucket(t, "alpha")
	if alpha["syncing"] != true || alpha["sync_revision"] == nil || alpha["sync_reason"] != nil {
		t.Errorf("alpha after republish: %v", alpha)
	}
	// Run again (a new leader resuming): converges, nothing to do.
	if err := h.Run(ctx, hooks.Task{Guard: guard}); err != nil {
		t.Fatal(err)
	}
}
