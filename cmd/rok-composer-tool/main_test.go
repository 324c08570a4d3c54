package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

type env struct {
	eps    string
	cli    *clientv3.Client
	man    *seed.Manifest
	layout seed.Layout
}

func seeded(t *testing.T, nodes, objects int) env {
	t.Helper()
	m := embed.NewTestMember(t)
	l := seed.Layout{Dir: t.TempDir()}
	man, err := seed.Run(context.Background(), embed.NewTestV2(t, m.Endpoints()), seed.Config{Docs: 40, Objects: objects, Nodes: seed.Nodes(nodes), Seed: 5, Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	return env{eps: strings.Join(m.Endpoints(), ","), cli: embed.NewTestClient(t, m.Endpoints()), man: man, layout: l}
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	code = cli.Run(root, args, &errb)
	return code, out.String(), errb.String()
}

// epochs returns every epoch key under /epochs/ with its value.
func epochs(t *testing.T, c *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := c.Get(context.Background(), "/epochs/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	return got
}

// With --check-refs (every map read), exactly the valid objects are
// stamped: no bad entry, the malformed map included, has an epoch.
func TestEpochUpdateAllStampsEveryValidObjectOnce(t *testing.T) {
	e := seeded(t, 1, 400)
	node := e.man.Nodes[0]
	code, out, stderr := run(t, "epoch-update", "--all", "--check-refs", "--endpoints", e.eps, "--node", node,
		"--nodelocal-root", e.layout.Nodelocal(node), "--local-root", e.layout.Local(), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep updateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	cur := strconv.FormatUint(rep.Epoch, 10)
	got := epochs(t, e.cli)
	if len(got) != e.man.Total {
		t.Fatalf("%d epoch keys for %d valid objects", len(got), e.man.Total)
	}
	for o := range e.man.Objects() {
		if v := got["/epochs/"+string(o.Scope)+"/"+o.ID()]; v != cur {
			t.Fatalf("%s %s: epoch %q, want the current %s", o.Scope, o.ID(), v, cur)
		}
	}
	for _, b := range e.man.Bad {
		name := filepath.Base(b.Path)
		for k := range got {
			if strings.HasSuffix(k, "/"+name) {
				t.Fatalf("bad entry %s (%s) has an epoch key %s", b.Path, b.Reason, k)
			}
		}
	}
	if len(rep.Scopes) != 4 || !rep.OK {
		t.Fatalf("report %+v", rep)
	}
	for _, r := range rep.Scopes {
		bad := 0
		for _, b := range e.man.Bad {
			if b.Scope == r.Scope {
				bad++
			}
		}
		if int(r.Stamped) != e.man.Count(r.Scope, "") || int(r.Skipped) != bad || r.AlreadyStamped != 0 {
			t.Fatalf("%s: report %d stamped %d skipped, tree %d objects %d bad", r.Scope, r.Stamped, r.Skipped, e.man.Count(r.Scope, ""), bad)
		}
	}

	// Re-running is harmless: nothing is written again.
	code, out, _ = run(t, "epoch-update", "--all", "--endpoints", e.eps, "--node", node,
		"--nodelocal-root", e.layout.Nodelocal(node), "--local-root", e.layout.Local())
	if code != 0 || !strings.Contains(out, "0 stamped, "+strconv.Itoa(e.man.Count(libmap.ChocksCA, ""))+" already stamped") {
		t.Fatalf("re-run exit %d:\n%s", code, out)
	}
}

// The guide's two commands, verbatim, with the environment a Rok node has.
func TestGuideCommandsVerbatimPerNodeThenMaster(t *testing.T) {
	e := seeded(t, 2, 300)
	t.Setenv("ROK_COMPOSER_ETCD_ENDPOINT", e.eps)
	t.Setenv(envLocalRoot, e.layout.Local())
	for _, node := range e.man.Nodes {
		t.Setenv(envNodelocalRoot, e.layout.Nodelocal(node))
		if code, out, stderr := run(t, "epoch-update", "maps-uuid", "chocks-idx", "--node", node); code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", node, code, out, stderr)
		}
	}
	code, out, stderr := run(t, "epoch-update", "maps-ca", "chocks-ca")
	if code != 0 {
		t.Fatalf("master: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "maps-ca (") || !strings.Contains(out, "skipped: 1 file where a folder belongs") {
		t.Fatalf("text report:\n%s", out)
	}
	// Maps are not read by default: a malformed map, readable and well
	// named, is stamped as a map.
	malformed := e.man.StampedUnread()
	for _, b := range malformed {
		if _, ok := epochs(t, e.cli)["/epochs/"+string(b.Scope)+"/"+b.ID()]; !ok {
			t.Fatalf("malformed map %s has no epoch", b.Path)
		}
	}
	if got := epochs(t, e.cli); len(got) != e.man.Total+len(malformed) {
		t.Fatalf("%d epoch keys for %d objects and %d malformed maps on 2 nodes and the shared root", len(got), e.man.Total, len(malformed))
	}
	for _, node := range e.man.Nodes {
		if _, ok := epochs(t, e.cli)["/epochs/chocks-idx/"+node+"/0"]; !ok {
			t.Fatalf("chock 0 of %s has no node-qualified epoch", node)
		}
	}
}

func TestEpochUpdateBadUsageAndBadRoots(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envNodelocalRoot, "")
	t.Setenv(envLocalRoot, "")
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"epoch-update", "maps-uuid", "maps"}, 2, "valid scopes: maps-uuid, chocks-idx, maps-ca, chocks-ca"},
		{[]string{"epoch-update"}, 2, "no scope given"},
		{[]string{"epoch-update", "--all", "maps-ca"}, 2, "not both"},
		{[]string{"epoch-update", "maps-uuid"}, 2, "--nodelocal-root"},
		{[]string{"epoch-update", "--nodelocal-root", dir, "maps-uuid", "chocks-ca"}, 2, "--local-root"},
		{[]string{"epoch-update", "--local-root", filepath.Join(dir, "nope"), "maps-ca"}, 1, filepath.Join(dir, "nope") + " does not exist"},
		{[]string{"epoch-update", "--local-root", file, "maps-ca"}, 1, file + " is not a directory"},
		{[]string{"epoch-update", "-o", "yaml", "maps-ca"}, 2, "-o must be"},
		{[]string{"epoch-update", "--local-root", dir, "--endpoints", "http://127.0.0.1:1", "--dial-timeout", "300ms", "maps-ca"}, 1, "etcd unreachable"},
	}
	for _, c := range cases {
		code, _, stderr := run(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

// Permissions do not stop root, so the binary runs as nobody over a tree
// with one unreadable folder.
func TestUnreadableSubtreeIsReportedRestStampedExit1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the tool as another user")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH: cannot build the binary")
	}
	e := seeded(t, 1, 200)
	bin := filepath.Join(e.layout.Dir, "rok-composer-tool")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for d := e.layout.Dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	var first seed.Object
	for first = range e.man.Objects() {
		break
	}
	locked := filepath.Join(e.layout.Local(), "chocks-ca", first.Name[:2])
	if err := os.Chmod(locked, 0o000); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "epoch-update", "maps-ca", "chocks-ca", "--endpoints", e.eps, "--local-root", e.layout.Local())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v\n%s%s", err, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), locked+": unreadable") || !strings.Contains(errb.String(), "1 unreadable entries were not stamped") ||
		!strings.Contains(out.String(), "not finished: 1 unreadable entries") {
		t.Fatalf("report does not name the unreadable folder:\n%s%s", out.String(), errb.String())
	}
	got := epochs(t, e.cli)
	stamped, skipped := 0, 0
	for o := range e.man.Objects() {
		if o.Scope != libmap.ChocksCA && o.Scope != libmap.MapsCA {
			continue
		}
		if _, ok := got["/epochs/"+string(o.Scope)+"/"+o.ID()]; ok {
			stamped++
		} else if o.Scope == libmap.ChocksCA && o.Name[:2] == first.Name[:2] {
			skipped++
		} else {
			t.Fatalf("%s %s outside the unreadable folder was not stamped", o.Scope, o.Name)
		}
	}
	if stamped == 0 || skipped == 0 {
		t.Fatalf("%d stamped, %d in the unreadable folder", stamped, skipped)
	}
}

// epoch-update --dry-run on a node before the window: counts by scope and
// the bad entries, with no etcd reachable at all, and nothing written.
func TestEpochUpdateDryRunNeedsNoEtcdAndWritesNothing(t *testing.T) {
	e := seeded(t, 1, 400)
	node := e.man.Nodes[0]
	code, out, stderr := run(t, "epoch-update", "--dry-run", "--all", "--endpoints", "http://127.0.0.1:1", "--node", node,
		"--nodelocal-root", e.layout.Nodelocal(node), "--local-root", e.layout.Local(), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep updateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	var objects int64
	for _, s := range rep.Scopes {
		if !s.DryRun || s.Stamped != 0 {
			t.Fatalf("scope %s: %+v", s.Scope, s)
		}
		objects += s.Objects
	}
	if !rep.DryRun || !rep.OK || len(rep.Scopes) != 4 || objects != int64(e.man.Total) {
		t.Fatalf("dry run report %+v: %d objects, the seed has %d", rep, objects, e.man.Total)
	}
	if got := epochs(t, e.cli); len(got) != 0 {
		t.Fatalf("a dry run stamped %d objects", len(got))
	}
}
