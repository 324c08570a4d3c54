package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gc"
)

func rokGC(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	code := cli.Run(root, args, &errb)
	return code, out.String(), errb.String()
}

// storage writes a node with one garbage chock already stamped with epoch
// 1, and returns its nodelocal root.
func storage(t *testing.T, m *embed.Member) string {
	t.Helper()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "chocks-idx"), 0o755)
	os.MkdirAll(filepath.Join(root, "maps-uuid"), 0o755)
	os.WriteFile(filepath.Join(root, "chocks-idx", "7"), []byte("chock"), 0o644)
	cli := embed.NewTestClient(t, m.Endpoints())
	if _, err := cli.Put(context.Background(), "/epochs/chocks-idx/node-1/7", "1"); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRokGCAgainstAFencedStoreExitsThreeNamingTheHolder(t *testing.T) {
	m := embed.NewTestMember(t)
	root := storage(t, m)
	c := embed.NewTestClient(t, m.Endpoints())
	if _, err := fencing.NewFence(c).Set(context.Background(), "upgrade/upgrade-0.14", "Rok 0.14 upgrade"); err != nil {
		t.Fatal(err)
	}
	code, _, errs := rokGC(t, "--endpoints", m.ClientURL(), "--node", "node-1", "--nodelocal-root", root)
	if code != cli.ExitFenced || !strings.Contains(errs, "upgrade/upgrade-0.14") || !strings.Contains(errs, "Rok 0.14 upgrade") {
		t.Fatalf("exit %d, stderr %q; want 3 naming holder and reason", code, errs)
	}
	if _, err := os.Stat(filepath.Join(root, "chocks-idx", "7")); err != nil {
		t.Fatal("a fenced rok-gc deleted a chock")
	}
	if code, _, _ := rokGC(t, "--help"); code != 0 {
		t.Fatal("--help failed")
	}
}

func TestRokGCDryRunDeletesNothingThenARunDeletes(t *testing.T) {
	m := embed.NewTestMember(t)
	root := storage(t, m)
	args := []string{"--endpoints", m.ClientURL(), "--node", "node-1", "--nodelocal-root", root, "-o", "json"}
	code, out, errs := rokGC(t, append(args, "--dry-run")...)
	var r gc.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("dry run: exit %d, %q, %q (%v)", code, out, errs, err)
	}
	if r.WouldDelete != 1 || r.Deleted != 0 || len(r.Listed) != 1 {
		t.Fatalf("dry run report %+v", r)
	}
	if _, err := os.Stat(filepath.Join(root, "chocks-idx", "7")); err != nil {
		t.Fatal("--dry-run deleted a chock")
	}
	code, out, errs = rokGC(t, args...)
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || r.Deleted != 1 {
		t.Fatalf("run: exit %d, %q, %q (%v)", code, out, errs, err)
	}
	if _, err := os.Stat(filepath.Join(root, "chocks-idx", "7")); !os.IsNotExist(err) {
		t.Fatal("the run did not delete the garbage chock")
	}
}

func TestRokGCWithEtcdUnreachableExitsOneAndDeletesNothing(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "chocks-idx"), 0o755)
	os.WriteFile(filepath.Join(root, "chocks-idx", "7"), []byte("chock"), 0o644)
	ports, err := embed.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs := rokGC(t, "--endpoints", fmt.Sprintf("http://127.0.0.1:%d", ports[0]), "--dial-timeout", "1s",
		"--node", "node-1", "--nodelocal-root", root)
	if code != cli.ExitFailed || !strings.Contains(errs, "unreachable") {
		t.Fatalf("exit %d, stderr %q; want 1 and a clear message", code, errs)
	}
	if _, err := os.Stat(filepath.Join(root, "chocks-idx", "7")); err != nil {
		t.Fatal("rok-gc deleted a chock without etcd")
	}
}

func TestRokGCUsage(t *testing.T) {
	if code, _, _ := rokGC(t, "--node", "n"); code != cli.ExitUsage {
		t.Fatalf("no root: exit %d, want 2", code)
	}
	if code, _, _ := rokGC(t, "--ca"); code != cli.ExitUsage {
		t.Fatalf("--ca without --local-root: exit %d, want 2", code)
	}
}
