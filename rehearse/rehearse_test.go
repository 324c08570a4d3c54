package rehearse_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/rehearse"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/upgrade"
)

// seeded is a stopped member's data directory holding a seeded pre-0.14
// installation, and its manifest.
type seeded struct {
	dir string
	man *seed.Manifest
}

// seedDataDir seeds a member with docs documents and stops it; plant,
// when set, writes more into its v2 store first.
func seedDataDir(t *testing.T, docs int, plant func(ctx context.Context, m *embed.Member)) seeded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "etcd")
	m := startMember(t, dir)
	keys := embed.NewTestV2(t, m.Endpoints())
	man, err := seed.Run(ctx, keys, seed.Config{Docs: docs, Objects: 120, Nodes: seed.Nodes(2), Seed: 7, Layout: seed.Layout{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if plant != nil {
		plant(ctx, m)
	}
	conn.CloseIdleV2()
	m.Close()
	return seeded{dir: dir, man: man}
}

func startMember(t *testing.T, dir string) *embed.Member {
	t.Helper()
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := embed.Start(ctx, embed.Config{
		Name: "prod-1", DataDir: dir, NoFsync: true,
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseIdleV2(); m.Close() })
	return m
}

// hashTree is every file's and directory's path, mode and content hash.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			out[rel] = "dir " + info.Mode().String()
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%s %d %s %s", info.Mode(), info.Size(), info.ModTime().UTC(), hex.EncodeToString(h.Sum(nil)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	var diff []string
	for p, h := range before {
		if after[p] != h {
			diff = append(diff, fmt.Sprintf("%s: %q → %q", p, h, after[p]))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diff = append(diff, p+": new")
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		t.Errorf("the data directory changed:\n%s", strings.Join(diff, "\n"))
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func names(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k[strings.LastIndex(k, "/")+1:]
	}
	sort.Strings(out)
	return out
}

func TestRehearsalOfASeededMember(t *testing.T) {
	s := seedDataDir(t, 400, nil)
	before := hashTree(t, s.dir)
	rep, err := rehearse.Run(ctxT(t), rehearse.Options{DataDir: s.dir})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, before, hashTree(t, s.dir))
	logReport(t, rep)
	if !rep.OK || len(rep.Problems) != 0 || !rep.Verified || rep.Checksum == "" {
		t.Fatalf("want a verified rehearsal without problems, got verified %v, problems %v", rep.Verified, rep.Problems)
	}
	st := rep.Store
	if st.Docs != int64(s.man.Docs) || st.TTLDocs != int64(s.man.TTLDocs) || st.EmptyDirs != int64(len(s.man.EmptyDirs)) ||
		st.V2EpochKeys != int64(s.man.V2EpochKeys) || st.LedgerEntries != int64(len(s.man.Hidden)) {
		t.Errorf("store: docs %d ttl %d empty %d epochs %d ledger %d; manifest: %d %d %d %d %d", st.Docs, st.TTLDocs, st.EmptyDirs, st.V2EpochKeys, st.LedgerEntries,
			s.man.Docs, s.man.TTLDocs, len(s.man.EmptyDirs), s.man.V2EpochKeys, len(s.man.Hidden))
	}
	if got, want := strings.Join(st.Published, ","), strings.Join(names(s.man.Published), ","); got != want {
		t.Errorf("published buckets %s, want %s", got, want)
	}
	var steps []string
	for _, x := range rep.Steps {
		steps = append(steps, x.Name)
		if x.Error != "" {
			t.Errorf("step %s: %s", x.Name, x.Error)
		}
	}
	if got := strings.Join(steps, " "); got != "gc-fence gw-migrate republish v2-epochs-cleanup gc-unfence" {
		t.Errorf("steps %s", got)
	}
	if rep.Downtime.Seconds <= 0 || rep.Downtime.MoveDocsPS <= 0 {
		t.Errorf("no downtime predicted: %+v", rep.Downtime)
	}
	if _, err := os.Stat(rep.WorkDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy in %s was not removed: %v", rep.WorkDir, err)
	}
}

func logReport(t *testing.T, rep *rehearse.Report) {
	var b strings.Builder
	rep.Text(&b)
	t.Log("\n" + b.String())
}

func TestEveryProblemIsNamed(t *testing.T) {
	big := "/rok/gw/blobs/huge"
	var conflict string
	s := seedDataDir(t, 300, func(ctx context.Context, m *embed.Member) {
		keys := embed.NewTestV2(t, m.Endpoints())
		cli := embed.NewTestClient(t, m.Endpoints())
		if _, err := keys.Set(ctx, big, strings.Repeat("x", 1600<<10), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.Set(ctx, "/rok/gw/_alive/gw-1", "up", &clientv2.SetOptions{TTL: 2 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		conflict = "/rok/gw/buckets/bucket-0001"
		if _, err := cli.Put(ctx, conflict, `{"name":"changed in v3"}`); err != nil {
			t.Fatal(err)
		}
		if _, err := fencing.NewFence(cli).Set(ctx, "operator", "storage maintenance"); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Put(ctx, upgrade.DefaultKeys.Run("old"), `{"id":"old","action":"upgrade","state":"running","steps":[]}`); err != nil {
			t.Fatal(err)
		}
	})
	before := hashTree(t, s.dir)
	rep, err := rehearse.Run(ctxT(t), rehearse.Options{DataDir: s.dir})
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, before, hashTree(t, s.dir))
	logReport(t, rep)
	if rep.OK {
		t.Fatal("a store the real run fails on rehearsed OK")
	}
	found := map[string]rehearse.Problem{}
	for _, p := range rep.Problems {
		found[p.Check] = p
	}
	if p := found["oversize"]; p.Key != big || p.Size != 1600<<10 || !strings.Contains(p.Detail, big) {
		t.Errorf("oversize document: %+v", p)
	}
	if p := found["conflict"]; p.Key != conflict {
		t.Errorf("conflict: %+v", p)
	}
	if p := found["gateway"]; p.Key != "/rok/gw/_alive/gw-1" {
		t.Errorf("running Gateway: %+v", p)
	}
	if p := found["fence"]; !strings.Contains(p.Detail, `"operator"`) {
		t.Errorf("fence: %+v", p)
	}
	if p := found["runs"]; !strings.Contains(p.Detail, `"old"`) {
		t.Errorf("unfinished run: %+v", p)
	}
	// The rest is still measured: the move ran past the problems.
	if rep.Store.EmptyDirs != int64(len(s.man.EmptyDirs)) {
		t.Errorf("empty dirs %v, want %v", rep.Store.EmptyDirList, s.man.EmptyDirs)
	}
	if rep.Store.Docs != int64(s.man.Docs)+1 || rep.Downtime.MoveDocsPS <= 0 {
		t.Errorf("docs %d (manifest %d and one planted), move rate %.0f", rep.Store.Docs, s.man.Docs, rep.Downtime.MoveDocsPS)
	}
}

func TestDirectoriesThatCannotBeRehearsed(t *testing.T) {
	empty := t.TempDir()
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("not etcd"), 0o644)
	os.MkdirAll(filepath.Join(other, "member", "wal"), 0o755)
	running := filepath.Join(t.TempDir(), "etcd")
	m := startMember(t, running)
	if _, err := embed.NewTestClient(t, m.Endpoints()).Put(ctxT(t), "/k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dir string
		want      error
		says      string
		still     bool // the dir does not change (the running member's does)
	}{
		{"empty", empty, rehearse.ErrEmptyDir, "holds nothing", true},
		{"not etcd", other, rehearse.ErrNotDataDir, "member/wal/*.wal", true},
		{"a member dir, not its parent", filepath.Join(running, "member"), rehearse.ErrNotDataDir, "give its parent", false},
		{"locked by a running etcd", running, rehearse.ErrLocked, "stop that member", false},
		{"missing", filepath.Join(empty, "nope"), os.ErrNotExist, "no such file", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			work := filepath.Join(t.TempDir(), "work")
			var before map[string]string
			if c.still {
				before = hashTree(t, c.dir)
			}
			_, err := rehearse.Run(ctxT(t), rehearse.Options{DataDir: c.dir, WorkDir: work})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("want %v saying %q, got %v", c.want, c.says, err)
			}
			if _, err := os.Stat(work); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused rehearsal made its work dir: %v", err)
			}
			if c.still {
				sameTree(t, before, hashTree(t, c.dir))
			}
		})
	}
}

func TestWorkDir(t *testing.T) {
	s := seedDataDir(t, 50, nil)
	ctx := ctxT(t)
	if _, err := rehearse.Run(ctx, rehearse.Options{DataDir: s.dir, WorkDir: filepath.Join(s.dir, "rehearsal")}); !errors.Is(err, rehearse.ErrWorkDir) {
		t.Errorf("a work dir inside the data dir: want ErrWorkDir, got %v", err)
	}
	work := filepath.Join(t.TempDir(), "work")
	if _, err := rehearse.Run(ctx, rehearse.Options{DataDir: s.dir, WorkDir: work}); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("without --keep the work dir holds %d entries", len(left))
	}
	rep, err := rehearse.Run(ctx, rehearse.Options{DataDir: s.dir, WorkDir: work, Keep: true})
	if err != nil || !rep.Kept {
		t.Fatal(err)
	}
	if wals, _ := filepath.Glob(filepath.Join(work, "data", "member", "wal", "*.wal")); len(wals) == 0 {
		t.Errorf("--keep left no copy in %s/data", work)
	}
	if _, err := rehearse.Run(ctx, rehearse.Options{DataDir: s.dir, WorkDir: work}); !errors.Is(err, rehearse.ErrWorkDir) {
		t.Errorf("a work dir holding a kept copy: want ErrWorkDir, got %v", err)
	}
}
