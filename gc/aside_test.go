package gc_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

// A CA sweep is killed with a garbage map set aside; a composer then
// relies on that map (its touch answers "exists") and a Gateway version
// names it. The next sweep must put the map back before its mark: were the
// map missing when marked, the chocks it lists would look unreachable and
// be collected under a live version.
func TestNextRunPutsBackWhatAKilledRunSetAsideBeforeItsMark(t *testing.T) {
	tr := newTree(t)
	ctx := context.Background()
	a1, a2 := tr.caChock("a1"), tr.caChock("a2")
	mapA := tr.caMap(a1, a2) // garbage for now: no version names it
	tr.epochUpdate()
	mapPath := tr.layout.Path(libmap.MapsCA, mapA)

	// The first run stops for good right after moving mapA aside, and its
	// lease expires (it was killed).
	killed := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	defer gc.SetTestHookStep(func(step, path string) {
		if step == gc.StepDelete && path == mapPath {
			once.Do(func() {
				close(killed)
				<-release
			})
		}
	})()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		gc.Run(runCtx, tr.cli, tr.config(true))
	}()
	<-killed
	defer func() { cancel(); close(release); <-done }()
	if tr.present(libmap.MapsCA, mapA) {
		t.Fatal("the map is not set aside: the scenario proves nothing")
	}
	revokeInstance(t, tr.cli, "/rok/gc/instances/_ca")

	if ok, err := tr.cache.Touch(ctx, libmap.MapsCA, "", mapA); err != nil || !ok {
		t.Fatalf("touch of the map: %v %v, want exists", ok, err)
	}
	tr.versionV3("bucket/obj/v1", mapA)

	r := tr.run(tr.config(true))
	if r.Recovered.Restored == 0 {
		t.Fatalf("the second run put back nothing (report %+v)", r)
	}
	tr.kept(libmap.MapsCA, mapA)
	tr.kept(libmap.ChocksCA, a1, a2)
	if r.Deleted != 0 {
		t.Fatalf("the second run deleted %d objects of a live map (report %+v)", r.Deleted, r)
	}
}

// Recover leaves a running GC's files alone, puts back a dead one's, and
// never replaces a file written since.
func TestRecoverPutsBackOnlyDeadInstancesFilesAndNeverReplaces(t *testing.T) {
	tr := newTree(t)
	ctx := context.Background()
	root := tr.layout.Local
	live, err := tr.cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := tr.cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.cli.Revoke(ctx, dead.ID); err != nil {
		t.Fatal(err)
	}
	aside := func(lease clientv3.LeaseID, content string) (name, tomb string) {
		name = hashOf(content)
		tomb = filepath.Join(root, gc.AsideDir, gc.LeaseName(lease), string(libmap.ChocksCA), name)
		tr.write(tomb, content)
		return name, tomb
	}
	held, heldTomb := aside(live.ID, "held")
	restored, _ := aside(dead.ID, "restored")
	superseded, supTomb := aside(dead.ID, "superseded")
	tr.write(tr.layout.Path(libmap.ChocksCA, superseded), "newer") // a composer wrote it again

	rec, err := gc.Recover(ctx, tr.cli, []string{root}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Restored != 1 || rec.Superseded != 1 || rec.Held != 1 || len(rec.Errors) != 0 {
		t.Fatalf("recovered %+v, want 1 restored, 1 superseded, 1 held", rec)
	}
	if got, _ := os.ReadFile(tr.layout.Path(libmap.ChocksCA, restored)); string(got) != "restored" {
		t.Fatalf("the dead instance's file was not put back: %q", got)
	}
	if got, _ := os.ReadFile(tr.layout.Path(libmap.ChocksCA, superseded)); string(got) != "newer" {
		t.Fatalf("put back replaced a newer file: %q", got)
	}
	if _, err := os.Lstat(supTomb); !os.IsNotExist(err) {
		t.Fatalf("the superseded file is still set aside: %v", err)
	}
	if _, err := os.Lstat(heldTomb); err != nil || tr.present(libmap.ChocksCA, held) {
		t.Fatalf("a running instance's file was moved: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, gc.AsideDir, gc.LeaseName(dead.ID))); !os.IsNotExist(err) {
		t.Fatalf("the dead instance's folder is left behind: %v", err)
	}
}

func revokeInstance(t *testing.T, cli *clientv3.Client, key string) {
	t.Helper()
	resp, err := cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("instance %s not registered: %v", key, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
}
