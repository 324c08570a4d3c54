package rehearse_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/rehearse"
	"github.com/rokup/rokup/seed"
)

// TestRehearsalOfAnEtcd34Member rehearses one member's data dir of a real
// etcd 3.4 cluster (Debian's, three processes, as the harness starts it):
// refused while the member runs, then, with the cluster stopped, the
// report's counts equal the manifest's and the directory is unchanged.
func TestRehearsalOfAnEtcd34Member(t *testing.T) {
	embed.NeedEtcd34(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c, err := harness.StartCluster(ctx, harness.Etcd34, filepath.Join(dir, "cluster"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v2, err := conn.V2(conn.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	man, err := seed.Run(ctx, conn.NewKeysAPI(v2), seed.Config{Docs: 500, Objects: 150, Nodes: seed.Nodes(3), Seed: 3, Layout: seed.Layout{Dir: filepath.Join(dir, "storage")}})
	if err != nil {
		t.Fatal(err)
	}
	conn.CloseIdleV2()
	member := filepath.Join(dir, "cluster", "e2")

	if _, err := rehearse.Run(ctx, rehearse.Options{DataDir: member}); !errors.Is(err, rehearse.ErrLocked) {
		t.Fatalf("a member's dir while it runs: want ErrLocked, got %v", err)
	}

	c.Close()
	before := hashTree(t, member)
	rep, err := rehearse.Run(ctx, rehearse.Options{DataDir: member})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, before, hashTree(t, member))
	logReport(t, rep)
	st := rep.Store
	if !rep.OK || st.Docs != int64(man.Docs) || st.TTLDocs != int64(man.TTLDocs) || st.V2EpochKeys != int64(man.V2EpochKeys) ||
		len(st.Published) != len(man.Published) || st.EmptyDirs != int64(len(man.EmptyDirs)) {
		t.Errorf("ok %v, problems %v, store %+v; manifest docs %d ttl %d epochs %d published %d", rep.OK, rep.Problems, st, man.Docs, man.TTLDocs, man.V2EpochKeys, len(man.Published))
	}
}
