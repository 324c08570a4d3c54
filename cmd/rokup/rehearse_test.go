package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/rehearse"
	"github.com/rokup/rokup/seed"
)

// seededDataDir seeds a member with rokup seed, lets plant write more
// into its v2 store, stops it, and returns its data dir and manifest.
func seededDataDir(t *testing.T, plant func(ctx context.Context, m *embed.Member)) (string, *seed.Manifest) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "etcd")
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := embed.Start(ctx, embed.Config{Name: "node-1", DataDir: data, NoFsync: true,
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), PeerURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1])})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	manifest := filepath.Join(dir, "manifest.json")
	if code, _, stderr := rokup(t, "seed", "--endpoints", m.ClientURL(), "--docs", "300", "--objects", "100", "--nodes", "2",
		"--dir", filepath.Join(dir, "storage"), "--manifest", manifest); code != 0 {
		t.Fatalf("rokup seed: exit %d: %s", code, stderr)
	}
	if plant != nil {
		plant(ctx, m)
		conn.CloseIdleV2()
	}
	m.Close()
	man, err := seed.ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	return data, man
}

func TestRehearseCommand(t *testing.T) {
	data, man := seededDataDir(t, nil)
	code, out, stderr := rokup(t, "rehearse", "--data-dir", data, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	var rep rehearse.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !rep.OK || rep.Store.Docs != int64(man.Docs) || rep.Store.TTLDocs != int64(man.TTLDocs) ||
		rep.Store.V2EpochKeys != int64(man.V2EpochKeys) || len(rep.Store.Published) != len(man.Published) {
		t.Errorf("report %+v; manifest docs %d ttl %d epochs %d published %d", rep.Store, man.Docs, man.TTLDocs, man.V2EpochKeys, len(man.Published))
	}

	code, out, _ = rokup(t, "rehearse", "--data-dir", data)
	if code != 0 || !strings.Contains(out, "Predicted Gateway downtime") || !strings.Contains(out, "would succeed") {
		t.Errorf("text report, exit %d:\n%s", code, out)
	}
}

func TestRehearseCommandFailsOnAnOversizeDocument(t *testing.T) {
	big := "/rok/gw/blobs/huge"
	data, _ := seededDataDir(t, func(ctx context.Context, m *embed.Member) {
		if _, err := embed.NewTestV2(t, m.Endpoints()).Set(ctx, big, strings.Repeat("x", 1600<<10), nil); err != nil {
			t.Fatal(err)
		}
	})
	code, out, stderr := rokup(t, "rehearse", "--data-dir", data)
	if code != 1 || !strings.Contains(stderr, big) || !strings.Contains(out, big+" holds 1638400 bytes") || !strings.Contains(out, "would FAIL") {
		t.Fatalf("want exit 1 naming %s, got %d\nstdout:\n%s\nstderr: %s", big, code, out, stderr)
	}
}

func TestRehearseCommandUsage(t *testing.T) {
	notEtcd := t.TempDir()
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"rehearse"}, "give --data-dir"},
		{[]string{"rehearse", "--data-dir", notEtcd}, "holds nothing"},
		{[]string{"rehearse", "--data-dir", filepath.Join(notEtcd, "missing")}, "no such file"},
		{[]string{"rehearse", "--data-dir", notEtcd, "--endpoints", "http://127.0.0.1:1"}, "do not go together"},
	} {
		code, _, stderr := rokup(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: want exit 2 saying %q, got %d: %s", c.args, c.says, code, stderr)
		}
	}
}

func TestRehearseCommandReadsALiveCluster(t *testing.T) {
	m := embed.NewTestMember(t)
	dir := t.TempDir()
	if code, _, stderr := rokup(t, "seed", "--endpoints", m.ClientURL(), "--docs", "200", "--objects", "50", "--nodes", "1",
		"--dir", filepath.Join(dir, "storage")); code != 0 {
		t.Fatalf("rokup seed: exit %d: %s", code, stderr)
	}
	cli := embed.NewTestClient(t, m.Endpoints())
	keys := embed.NewTestV2(t, m.Endpoints())
	ctx := context.Background()
	marks := func() string {
		r, err := cli.Get(ctx, "/rok/ping")
		if err != nil {
			t.Fatal(err)
		}
		v, err := keys.Get(ctx, "/", nil)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("v3 revision %d, v2 index %d", r.Header.Revision, v.Index)
	}
	before := marks()
	code, out, stderr := rokup(t, "rehearse", "--endpoints", m.ClientURL(), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	var rep rehearse.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.Live == nil || rep.Store.Docs != 200 || !rep.OK {
		t.Errorf("live %+v, docs %d, ok %v", rep.Live, rep.Store.Docs, rep.OK)
	}
	if after := marks(); after != before {
		t.Errorf("the live cluster moved: %s → %s", before, after)
	}
}
