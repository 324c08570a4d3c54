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

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/rehearse"
	"github.com/rokup/rokup/seed"
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
	if !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("want a rehearsal without problems, got %v", rep.Problems)
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
