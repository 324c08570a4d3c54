package rehearse_test

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/rehearse"
	"github.com/rokup/rokup/seed"
)

// TestRehearsalOfALiveClusterWritesNothingThere reads a seeded cluster's
// store into the rehearsal and checks that the cluster's v3 revision and
// v2 index did not move, and that the report holds the manifest's counts
// and the problems of the live store (its fence).
func TestRehearsalOfALiveClusterWritesNothingThere(t *testing.T) {
	c := embed.NewTestCluster(t, 3)
	ctx := ctxT(t)
	keys := embed.NewTestV2(t, c.Endpoints())
	cli := embed.NewTestClient(t, c.Endpoints())
	man, err := seed.Run(ctx, keys, seed.Config{Docs: 400, Objects: 120, Nodes: seed.Nodes(2), Seed: 5, Layout: seed.Layout{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fencing.NewFence(cli).Set(ctx, "operator", "storage maintenance"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/rok/gw/buckets/bucket-0002", `{"name":"changed in v3"}`); err != nil {
		t.Fatal(err)
	}
	marks := func() (int64, uint64) {
		r, err := cli.Get(ctx, "/rok/ping", clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		v, err := keys.Get(ctx, "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision, v.Index
	}
	rev0, idx0 := marks()

	rep, err := rehearse.Run(ctx, rehearse.Options{Live: &rehearse.Live{V3: cli, V2: keys, Endpoints: c.Endpoints()}})
	if err != nil {
		t.Fatal(err)
	}
	logReport(t, rep)
	if rev, idx := marks(); rev != rev0 || idx != idx0 {
		t.Fatalf("the live cluster moved: v3 revision %d → %d, v2 index %d → %d", rev0, rev, idx0, idx)
	}
	st := rep.Store
	if st.Docs != int64(man.Docs) || st.TTLDocs != int64(man.TTLDocs) || st.EmptyDirs != int64(len(man.EmptyDirs)) ||
		st.V2EpochKeys != int64(man.V2EpochKeys) || st.LedgerEntries != int64(len(man.Hidden)) || len(st.Published) != len(man.Published) {
		t.Errorf("store %+v; manifest docs %d ttl %d empty %d epochs %d hidden %d published %d", st, man.Docs, man.TTLDocs, len(man.EmptyDirs), man.V2EpochKeys, len(man.Hidden), len(man.Published))
	}
	checks := map[string]string{}
	for _, p := range rep.Problems {
		checks[p.Check] = p.Key
	}
	if rep.OK || checks["fence"] != fencing.DefaultFenceKey || checks["conflict"] != "/rok/gw/buckets/bucket-0002" {
		t.Errorf("want the live fence and v3 conflict named, got %v", rep.Problems)
	}
}
