package integration

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/upgrade"
	"github.com/rokup/rokup/verify"
)

// A node whose nodelocal root is missing is caught by the preflight: the
// dry run names it, the run is rejected with the fence never set (etcd's
// history holds no write of the fence key), status says nothing was
// written and what to do; once the root is back and the sidecar restarted,
// the same id runs to the end.
func TestMissingRootIsCaughtBeforeTheFence(t *testing.T) {
	e := harness.New(t, harness.Options{Docs: 60, Objects: 300})
	root := e.Layout.Nodelocal("node-3")
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	e.StartSidecars()
	const id = "pf"

	out, code := e.Exec("rokup", "start", "--id", id, "--dry-run")
	if code != 1 || !strings.Contains(out, "node node-3 cannot run epochs-nodelocal") || !strings.Contains(out, root+" does not exist") {
		t.Fatalf("start --dry-run: exit %d, want 1 naming node-3's missing root:\n%s", code, out)
	}
	if resp, err := e.Cli.Get(context.Background(), upgrade.DefaultKeys.Control()); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("start --dry-run wrote the control key (%v)", err)
	}

	out, code = e.Exec("rokup", "start", "--id", id, "--wait")
	if code != 1 || !strings.Contains(out, "nothing was written") {
		t.Fatalf("start --wait: exit %d, want 1 saying nothing was written:\n%s", code, out)
	}
	run, err := e.WaitRun(id, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != upgrade.StateRejected || !strings.Contains(run.Error, "node-3") {
		t.Fatalf("run %s: %q, want rejected naming node-3", run.State, run.Error)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := verify.ReadHistory(ctx, e.Cli, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range h.Events {
		if ev.Key == fencing.DefaultFenceKey || strings.HasPrefix(ev.Key, e.Manifest.GWPrefix+"/") {
			t.Fatalf("a rejected run wrote %s at revision %d", ev.Key, ev.Rev)
		}
	}
	out, code = e.Exec("rokup", "status", "--id", id, "-o", "json")
	var view struct {
		State string   `json:"state"`
		Next  []string `json:"next"`
		Fence any      `json:"fence"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &view) != nil || view.State != upgrade.StateRejected ||
		view.Fence != nil || len(view.Next) == 0 || !strings.Contains(view.Next[0], "rokup start --id "+id) {
		t.Fatalf("status -o json: exit %d, want the rejection with the next command:\n%s", code, out)
	}

	// The operator fixes the root and restarts the sidecar.
	if err := os.Rename(root+".away", root); err != nil {
		t.Fatal(err)
	}
	i := e.Index("node-3")
	if err := e.Sidecars[i].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.Sidecars[i].Start(); err != nil {
		t.Fatal(err)
	}
	e.WaitLive(3)
	// The restarted sidecar's member key says its root is good again.
	if err := e.Until(30*time.Second, func(ctx context.Context) (bool, error) {
		live, _, err := upgrade.Members(ctx, e.Cli, upgrade.DefaultKeys)
		info, ok := live["node-3"]
		return ok && info.Ready != nil && info.Ready.Cannot(upgrade.StepNodelocal) == "", err
	}); err != nil {
		t.Fatal(err)
	}
	if out, code := e.Exec("rokup", "start", "--id", id, "--dry-run"); code != 0 {
		t.Fatalf("start --dry-run after the fix: exit %d\n%s", code, out)
	}
	if out, code := e.Exec("rokup", "start", "--id", id, "--wait"); code != 0 {
		t.Fatalf("start --wait after the fix: exit %d\n%s\n%s", code, out, e.Logs())
	}
	run, err = e.WaitRun(id, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range e.Check(harness.Invariants{Run: run, Mode: "nodelocal"}) {
		if !c.OK {
			t.Errorf("invariant %s: %s", c.Name, c.Detail)
		}
	}
}

// A key in v3 under the Gateway's prefix that v2 does not hold (a copy of
// a document deleted from v2 since an earlier, interrupted move) would
// fail the move once GC is fenced: the dry run names it, the run is
// rejected with the fence never set; once the key is gone, the same id
// runs to the end.
func TestV3KeyV2DoesNotHoldIsCaughtBeforeTheFence(t *testing.T) {
	e := harness.New(t, harness.Options{Docs: 60, Objects: 300})
	e.StartSidecars()
	const id = "pf-v3"
	stale := e.Manifest.GWPrefix + "/objects/deleted-from-v2-since"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := e.Cli.Put(ctx, stale, "a stale copy"); err != nil {
		t.Fatal(err)
	}
	out, code := e.Exec("rokup", "start", "--id", id, "--dry-run")
	if code != 1 || !strings.Contains(out, stale) {
		t.Fatalf("start --dry-run: exit %d, want 1 naming %s:\n%s", code, stale, out)
	}
	if out, code = e.Exec("rokup", "start", "--id", id, "--wait"); code != 1 {
		t.Fatalf("start --wait: exit %d, want 1:\n%s", code, out)
	}
	run, err := e.WaitRun(id, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != upgrade.StateRejected || !strings.Contains(run.Error, stale) {
		t.Fatalf("run %s: %q, want rejected naming %s", run.State, run.Error, stale)
	}
	if f, err := e.Cli.Get(ctx, fencing.DefaultFenceKey); err != nil || len(f.Kvs) != 0 {
		t.Fatalf("the rejected run left a fence (%v)", err)
	}

	if _, err := e.Cli.Delete(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if out, code := e.Exec("rokup", "start", "--id", id, "--wait"); code != 0 {
		t.Fatalf("start --wait once the key is gone: exit %d\n%s\n%s", code, out, e.Logs())
	}
	if run, err = e.WaitRun(id, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.Check(harness.Invariants{Run: run, Mode: "nodelocal"}) {
		if !c.OK {
			t.Errorf("invariant %s: %s", c.Name, c.Detail)
		}
	}
}
