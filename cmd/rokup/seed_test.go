package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/seed"
)

// TestSeedHelperProcess is not a test: it is rokup itself, run by the seed
// tests in a child process, so that the v2 client's connections end with
// the process (the embedded etcd's Close waits on idle ones).
func TestSeedHelperProcess(t *testing.T) {
	if os.Getenv("ROKUP_SEED_HELPER") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(cli.Run(newRoot(), args, os.Stderr))
}

func rokup(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestSeedHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "ROKUP_SEED_HELPER=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

func TestSeedCommand(t *testing.T) {
	m := embed.NewTestMember(t)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "manifest.json")
	args := []string{"seed", "--endpoints", m.ClientURL(), "--docs", "200", "--objects", "300", "--nodes", "2",
		"--dir", filepath.Join(dir, "storage"), "--manifest", manifest, "-o", "json"}
	code, out, stderr := rokup(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var sum seedSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	man, err := seed.ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Docs != 200 || man.Total != 300 || sum.V2EpochKeys != 300 || sum.V2EpochEvery != 1 || sum.PeakRSSMiB <= 0 || sum.Reachable+sum.Garbage != 300 || len(man.Nodes) != 2 {
		t.Fatalf("summary %+v, manifest %d objects on %v", sum, man.Total, man.Nodes)
	}
	if _, err := os.Stat(filepath.Join(dir, "storage", "node-2", "nodelocal", "chocks-idx", "0")); err != nil {
		t.Fatalf("node-2's storage: %v", err)
	}
	// Each nodelocal root remembers its node.
	if b, err := os.ReadFile(filepath.Join(dir, "storage", "node-2", "nodelocal", ".rok-node")); err != nil || string(b) != "node-2\n" {
		t.Fatalf("node-2's marker: %q, %v", b, err)
	}

	code, _, stderr = rokup(t, args...)
	if code != 1 || !strings.Contains(stderr, "not empty") {
		t.Fatalf("seeding again: exit %d, %s", code, stderr)
	}
	if code, _, stderr = rokup(t, append(args, "--force")...); code != 0 {
		t.Fatalf("--force: exit %d, %s", code, stderr)
	}
}

func TestSeedCommandBadUsage(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"seed", "--nodes", "0", "--dir", "x"}, "--nodes"},
		{[]string{"seed"}, "--dir"},
		{[]string{"seed", "--nodelocal-root", "a", "--local-root", "b"}, "one node's storage"},
		{[]string{"seed", "--dir", "x", "--v2-epochs-max", "0"}, "--v2-epochs-max"},
	}
	for _, c := range cases {
		var errb bytes.Buffer
		if code := cli.Run(newRoot(), c.args, &errb); code != 2 || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, %q", c.args, code, errb.String())
		}
	}
}
