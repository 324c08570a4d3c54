package composer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/libmap"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcd stops in the middle of an epoch update: the update fails with an
// error instead of hanging, and once etcd is back the same update
// completes.
func TestUpdateSurvivesEtcdDownMidRun(t *testing.T) {
	const n = 20000
	l := composer.Layout{Nodelocal: t.TempDir()}
	dir := l.Dir(libmap.ChocksIdx)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := embed.Config{
		DataDir:   t.TempDir(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		NoFsync:   true,
	}
	ctx := context.Background()
	m, err := embed.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cli := embed.NewTestClient(t, m.Endpoints())
	cache := libmap.New(cli, libmap.WithRequestTimeout(2*time.Second))

	var once sync.Once
	rep, err := composer.Update(ctx, cache, l, libmap.ChocksIdx, composer.UpdateConfig{
		Node:       "node-1",
		OnProgress: func(done, _ int64) { once.Do(m.Close) },
	})
	if err == nil {
		t.Fatalf("etcd stopped after the first commit, yet the update succeeded: %+v", rep)
	}
	t.Logf("etcd down: %v", err)

	m, err = embed.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	// The client reconnects with a backoff that grew while etcd was down:
	// the re-run starts once it answers again, not on the 2 s budget of
	// its first request.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := cli.Get(wctx, "/", clientv3.WithCountOnly()); err != nil {
		t.Fatalf("etcd restarted but the client never reached it: %v", err)
	}
	rep, err = composer.Update(ctx, cache, l, libmap.ChocksIdx, composer.UpdateConfig{Node: "node-1"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stamped+rep.AlreadyStamped != n || rep.AlreadyStamped == 0 {
		t.Fatalf("re-run: %d stamped, %d already stamped, want %d in all and some from the first run", rep.Stamped, rep.AlreadyStamped, n)
	}
	if c, _ := cache.Count(ctx, libmap.ChocksIdx, "node-1"); c != n {
		t.Fatalf("%d epoch keys after the re-run, want %d", c, n)
	}
}
