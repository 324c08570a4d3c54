package gc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

func TestOneRunAfterEpochUpdateCollectsExactlyTheUnreachable(t *testing.T) {
	tr := newTree(t)
	v1 := tr.volume(1, 1, 2)
	v2 := tr.volume(2, 2, 3)
	tr.chock(4)
	tr.chock(5)
	tr.epochUpdate()

	r := tr.run(tr.config(false))
	tr.gone(libmap.ChocksIdx, "4", "5")
	tr.kept(libmap.ChocksIdx, "1", "2", "3")
	tr.kept(libmap.MapsUUID, v1, v2)
	if r.Deleted != 2 || r.Reachable != 5 || r.Scanned != 7 || r.NoEpoch != 0 || r.BytesFreed != int64(2*len("chock 4")) {
		t.Fatalf("report %+v", r)
	}
	// Where the time went is reported (the bench's note is made of it).
	if r.Seconds.Mark <= 0 || r.Seconds.Sweep <= 0 || r.Seconds.Files <= 0 {
		t.Fatalf("seconds %+v: the mark, the sweep and the files removed each took some time", r.Seconds)
	}
}

func TestCASweepKeepsWhatGatewayVersionsReachInV3AndV2(t *testing.T) {
	tr := newTree(t)
	a1, a2, b1, c1, d1 := tr.caChock("a1"), tr.caChock("a2"), tr.caChock("b1"), tr.caChock("c1"), tr.caChock("d1")
	mapA := tr.caMap(a1, a2)
	mapB := tr.caMap(b1, a1)
	mapC := tr.caMap(c1, a2) // no version names it: garbage, and so is c1
	tr.versionV3("bucket-1/obj/v1", mapA)
	tr.versionV2("bucket-2/obj/v7", mapB) // not moved to v3 yet
	tr.epochUpdate()

	r := tr.run(tr.config(true))
	tr.gone(libmap.MapsCA, mapC)
	tr.gone(libmap.ChocksCA, c1, d1)
	tr.kept(libmap.MapsCA, mapA, mapB)
	tr.kept(libmap.ChocksCA, a1, a2, b1)
	if r.Deleted != 3 || r.Roots != 2 || r.Reachable != 5 {
		t.Fatalf("report %+v", r)
	}
}

// A store's worth of versions in v2, one directory per object in
// buckets alike enough to be read whole, and maps read several at once:
// every map a version names is a root, however the walk and the reads
// went, and a version naming a map that is not on storage is counted.
func TestCASweepReachesEveryMapOfManyV2Versions(t *testing.T) {
	tr := newTree(t)
	shared := tr.caChock("shared")
	var keep, maps []string
	for b := 0; b < 10; b++ {
		for o := 0; o < 10; o++ {
			c := tr.caChock(fmt.Sprintf("chock %d/%d", b, o))
			m := tr.caMap(c, shared)
			tr.versionV2(fmt.Sprintf("bucket-%d/obj-%d/v1", b, o), m)
			keep, maps = append(keep, c), append(maps, m)
		}
	}
	tr.versionV2("bucket-3/gone/v1", hashOf("a map deleted from storage"))
	lost := tr.caChock("lost")
	lostMap := tr.caMap(lost)
	tr.epochUpdate()

	r := tr.run(tr.config(true))
	tr.kept(libmap.MapsCA, maps...)
	tr.kept(libmap.ChocksCA, append(keep, shared)...)
	tr.gone(libmap.MapsCA, lostMap)
	tr.gone(libmap.ChocksCA, lost)
	if r.Deleted != 2 || r.Roots != 101 || r.MissingRoots != 1 || len(r.RootsIncomplete) != 0 {
		t.Fatalf("report %+v", r)
	}
}

// An etcd without the v2 API (3.5's default) answers the versions walk
// 404: the CA sweep reads its roots from v3 alone and says so, rather
// than failing or taking the 404 for an empty store it could trust.
func TestCASweepWithoutTheV2APIReadsVersionsFromV3AndSaysSo(t *testing.T) {
	tr := newTree(t)
	a := tr.caChock("a")
	c := tr.caChock("c")
	mapA := tr.caMap(a)
	mapC := tr.caMap(c)
	tr.versionV3("bucket-1/obj/v1", mapA)
	tr.epochUpdate()

	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	v2, err := conn.V2(conn.Config{Endpoints: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tr.config(true)
	cfg.V2 = conn.NewKeysAPI(v2)
	r := tr.run(cfg)
	tr.kept(libmap.MapsCA, mapA)
	tr.kept(libmap.ChocksCA, a)
	tr.gone(libmap.MapsCA, mapC)
	tr.gone(libmap.ChocksCA, c)
	if !strings.Contains(strings.Join(r.Notes, "\n"), "v2 API is disabled") {
		t.Fatalf("notes %q do not say the v2 API is disabled", r.Notes)
	}
}

func TestEpochlessObjectSurvivesItsFirstRunAndGoesInTheNext(t *testing.T) {
	tr := newTree(t)
	tr.volume(1, 1)
	tr.epochUpdate()
	tr.chock(9) // written after the epoch update, never stamped

	r1 := tr.run(tr.config(false))
	tr.kept(libmap.ChocksIdx, "9")
	if got := tr.epoch(libmap.ChocksIdx, "9"); got != strconv.FormatUint(r1.Epoch, 10) || r1.NoEpoch != 1 || r1.Deleted != 0 {
		t.Fatalf("first run: epoch of 9 is %q, want G=%d; report %+v", got, r1.Epoch, r1)
	}
	r2 := tr.run(tr.config(false))
	tr.gone(libmap.ChocksIdx, "9")
	if r2.Deleted != 1 {
		t.Fatalf("second run: report %+v", r2)
	}
	tr.kept(libmap.ChocksIdx, "1")
}

func TestObjectStampedOrTouchedAfterTheRunBeganSurvives(t *testing.T) {
	tr := newTree(t)
	tr.volume(1, 1)
	tr.chock(4) // will be touched by a composer during the run
	tr.chock(5) // will be re-stamped during the run
	tr.chock(6) // left alone: collected
	tr.epochUpdate()
	ctx := context.Background()

	cfg := tr.config(false)
	var touched bool
	cfg.OnProgress = func(p gc.Progress) {
		if p.Phase != "mark" || touched {
			return
		}
		touched = true
		// The run has advanced the epoch to G: what happens now is "after
		// the run began".
		if ok, err := tr.cache.Touch(ctx, libmap.ChocksIdx, tr.node, "4"); err != nil || !ok {
			t.Errorf("touch: %v %v", ok, err)
		}
		s, err := tr.cache.NewStamper(ctx, libmap.ChocksIdx, tr.node, libmap.StampConfig{})
		if err != nil {
			t.Fatal(err)
		}
		s.Add("5")
		if _, err := s.Close(); err != nil {
			t.Error(err)
		}
		tr.chock(7) // a brand new chock, stamped as a composer writes it
		s, _ = tr.cache.NewStamper(ctx, libmap.ChocksIdx, tr.node, libmap.StampConfig{})
		s.Add("7")
		s.Close()
	}
	r := tr.run(cfg)
	tr.kept(libmap.ChocksIdx, "1", "4", "5", "7")
	tr.gone(libmap.ChocksIdx, "6")
	if r.TooRecent != 3 || r.Deleted != 1 {
		t.Fatalf("report %+v", r)
	}
}

func TestBadEntriesAreKeptAndReported(t *testing.T) {
	tr := newTree(t)
	tr.volume(1, 1)
	tr.chock(2)
	tr.chock(3)
	tr.write(tr.layout.Dir(libmap.ChocksIdx)+"/not-a-chock", "x")
	tr.write(tr.layout.Dir(libmap.ChocksIdx)+"/.tmp-upload", "x")
	tr.epochUpdate()
	ctx := context.Background()
	if _, err := tr.cli.Put(ctx, tr.cache.Key(libmap.ChocksIdx, tr.id(libmap.ChocksIdx, "2")), "garbage"); err != nil {
		t.Fatal(err)
	}
	// chock 3 vanishes between the scan and its deletion.
	defer gc.SetTestHookCollect(func(path string) {
		if strings.HasSuffix(path, "/chocks-idx/3") {
			os.Remove(path)
		}
	})()
	r := tr.run(tr.config(false))
	tr.kept(libmap.ChocksIdx, "1", "2")
	if tr.epoch(libmap.ChocksIdx, "2") != "garbage" {
		t.Fatal("the garbage epoch key was touched")
	}
	for _, p := range []string{"not-a-chock", ".tmp-upload"} {
		if _, err := os.Stat(tr.layout.Dir(libmap.ChocksIdx) + "/" + p); err != nil {
			t.Fatalf("bad entry %s was deleted", p)
		}
	}
	if r.Bad != 3 || r.Vanished != 1 || r.Deleted != 1 || r.Errors != 0 {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(strings.Join(r.BadList, "\n"), "garbage") {
		t.Fatalf("bad list does not name the garbage epoch: %q", r.BadList)
	}
}

func TestUnreadableRootMapKeepsEveryChock(t *testing.T) {
	tr := newTree(t)
	tr.volume(1, 1)
	tr.chock(2)
	tr.write(tr.layout.Path(libmap.MapsUUID, "00000000-0000-4000-8000-000000000099"), "this is not a map\n")
	tr.epochUpdate()
	r := tr.run(tr.config(false))
	tr.kept(libmap.ChocksIdx, "1", "2")
	if r.Deleted != 0 || len(r.RootsIncomplete) == 0 {
		t.Fatalf("report %+v", r)
	}
}

func TestRunRefusesWhenFencedAndWritesNothing(t *testing.T) {
	tr := newTree(t)
	tr.chock(1)
	tr.epochUpdate()
	ctx := context.Background()
	if _, err := fencing.NewFence(tr.cli).Set(ctx, "upgrade/r1", "Rok 0.14 upgrade"); err != nil {
		t.Fatal(err)
	}
	before, _ := tr.cache.Current(ctx)
	_, err := gc.Run(ctx, tr.cli, tr.config(false))
	if !errors.Is(err, fencing.ErrFenced) || !strings.Contains(err.Error(), "upgrade/r1") {
		t.Fatalf("want ErrFenced naming the holder, got %v", err)
	}
	after, _ := tr.cache.Current(ctx)
	tr.kept(libmap.ChocksIdx, "1")
	if after != before || tr.epoch(libmap.ChocksIdx, "1") == "" {
		t.Fatalf("a fenced run wrote: epoch %d→%d", before, after)
	}
}

func TestDryRunListsAndWritesNothing(t *testing.T) {
	tr := newTree(t)
	tr.volume(1, 1)
	tr.chock(2)
	tr.epochUpdate()
	tr.chock(3) // no epoch: a real run would stamp it
	ctx := context.Background()
	rev := func() int64 {
		resp, err := tr.cli.Get(ctx, "/")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	before := rev()
	cfg := tr.config(false)
	cfg.DryRun = true
	r := tr.run(cfg)
	if after := rev(); after != before {
		t.Fatalf("dry run wrote to etcd: revision %d→%d", before, after)
	}
	tr.kept(libmap.ChocksIdx, "1", "2", "3")
	if r.WouldDelete != 1 || len(r.Listed) != 1 || !strings.HasSuffix(r.Listed[0], "chocks-idx/2") || r.NoEpoch != 1 {
		t.Fatalf("report %+v", r)
	}
}

func TestSecondGCOnTheSameNodeRefuses(t *testing.T) {
	tr := newTree(t)
	ctx := context.Background()
	in, err := fencing.Register(ctx, tr.cli, tr.node)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	if _, err := gc.Run(ctx, tr.cli, tr.config(false)); !errors.Is(err, fencing.ErrInstanceRunning) {
		t.Fatalf("want ErrInstanceRunning, got %v", err)
	}
	ca, err := fencing.RegisterCA(ctx, tr.cli)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := gc.Run(ctx, tr.cli, tr.config(true)); !errors.Is(err, fencing.ErrInstanceRunning) {
		t.Fatalf("second CA sweep: want ErrInstanceRunning, got %v", err)
	}
}
