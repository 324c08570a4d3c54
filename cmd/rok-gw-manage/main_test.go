package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/seed"
)

var tool string

// TestMain builds rok-gw-manage once; the tests run it as an operator
// would, as a separate process.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gw-manage-test-")
	if err != nil {
		panic(err)
	}
	tool = filepath.Join(dir, "rok-gw-manage")
	if out, err := exec.Command("go", "build", "-o", tool, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type run struct {
	code           int
	stdout, stderr string
}

func gwManage(t *testing.T, eps []string, args ...string) run {
	t.Helper()
	if eps != nil {
		args = append(args, "--endpoints", strings.Join(eps, ","))
	}
	cmd := exec.Command(tool, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := run{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// seededGateway seeds a small v2 Gateway store and returns the member's
// endpoints and a v3 client.
func seededGateway(t *testing.T) ([]string, *clientv3.Client) {
	t.Helper()
	m := embed.NewTestMember(t)
	kapi := embed.NewTestV2(t, m.Endpoints())
	ctx := context.Background()
	docs := map[string]string{
		"/rok/gw/_migrations/gw/0001_initial": `{"applied":"2023-01-01T00:00:00Z"}`,
		"/rok/gw/buckets/alpha":               `{"name":"alpha","published":true}`,
		"/rok/gw/buckets/beta":                `{"name":"beta","published":false}`,
		"/rok/gw/buckets/broken":              `{oops`,
	}
	for i := 0; i < 40; i++ {
		docs[fmt.Sprintf("/rok/gw/versions/v%02d", i)] = fmt.Sprintf(`{"map":"maps-ca/%064d"}`, i)
	}
	for i := 0; i < 10; i++ { // a family of directories, read whole once sampled
		docs[fmt.Sprintf("/rok/gw/objects/b%02d/doc", i)] = `{"size":1}`
	}
	for k, v := range docs {
		if _, err := kapi.Set(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kapi.Set(ctx, "/rok/gw/sessions/s1", "x", &clientv2.SetOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return m.Endpoints(), embed.NewTestClient(t, m.Endpoints())
}

func v3Count(t *testing.T, cli *clientv3.Client) int64 {
	resp, err := cli.Get(context.Background(), "/rok/gw/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

func TestMigrateCommandsAsAnOperatorUsesThem(t *testing.T) {
	eps, cli := seededGateway(t)

	r := gwManage(t, eps, "showmigrations")
	if r.code != 0 || r.stdout != "gw\n [X] 0001_initial\n [ ] 0002_v3_store\n [ ] 0003_published_buckets\n [ ] 0004_move_state\n" {
		t.Fatalf("showmigrations: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = gwManage(t, eps, "migrate", "--check")
	if r.code != 1 || !strings.Contains(r.stdout, "Apply gw.0002_v3_store") {
		t.Fatalf("migrate --check before: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = gwManage(t, eps, "migrate", "--plan")
	if r.code != 0 || !strings.Contains(r.stdout, "Apply gw.0003_published_buckets") {
		t.Fatalf("migrate --plan: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = gwManage(t, eps, "migrate", "--dry-run", "-o", "json")
	var dry migrateReport
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &dry) != nil || len(dry.Steps) != 3 || dry.Steps[0].Result.Counts["docs"] != 55 || dry.Steps[1].Result.Counts["published"] != 1 {
		t.Fatalf("migrate --dry-run: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if n := v3Count(t, cli); n != 0 {
		t.Fatalf("--check, --plan and --dry-run wrote %d keys", n)
	}

	r = gwManage(t, eps, "migrate", "-o", "json")
	var rep struct {
		Steps []struct {
			Migration struct{ Name string }
			Report    map[string]any
		}
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Steps) != 3 {
		t.Fatalf("migrate: %d %s %s", r.code, r.stdout, r.stderr)
	}
	move := rep.Steps[0].Report
	if move["docs"] != 55.0 || move["created"] != 55.0 || move["leases"] != 1.0 || move["checksum"] == "" || move["docs_per_s"] == nil {
		t.Errorf("move report: %v", move)
	}
	if reads, ps := move["v2_reads"].(map[string]any), move["phase_seconds"].(map[string]any); move["fast_verify"] != true || reads["whole"].(float64) == 0 || ps["read"] == nil || ps["copy"] == nil || ps["verify"] == nil {
		t.Errorf("move report: fast verify %v, v2 reads %v, phases %v", move["fast_verify"], reads, ps)
	}
	if pub := rep.Steps[1].Report["published"].([]any); len(pub) != 1 || pub[0] != "alpha" {
		t.Errorf("published buckets: %v", rep.Steps[1].Report)
	}
	if r = gwManage(t, eps, "migrate", "--check"); r.code != 0 {
		t.Errorf("migrate --check after: %d %s", r.code, r.stderr)
	}
	if r = gwManage(t, eps, "migrate"); r.code != 0 || !strings.Contains(r.stdout, "No migrations to apply.") {
		t.Errorf("second migrate: %d %q", r.code, r.stdout)
	}
	r = gwManage(t, eps, "showmigrations", "--plan")
	if r.stdout != "[X]  gw.0001_initial\n[X]  gw.0002_v3_store\n[X]  gw.0003_published_buckets\n[X]  gw.0004_move_state\n" {
		t.Errorf("showmigrations --plan: %q", r.stdout)
	}

	r = gwManage(t, eps, "republish", "alpha", "-o", "json")
	var rp struct {
		Published []string `json:"published"`
		Revision  int64    `json:"sync_revision"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rp) != nil || len(rp.Published) != 1 || rp.Revision == 0 {
		t.Fatalf("republish: %d %s %s", r.code, r.stdout, r.stderr)
	}
	resp, _ := cli.Get(context.Background(), "/rok/gw/buckets/alpha")
	var alpha map[string]any
	_ = json.Unmarshal(resp.Kvs[0].Value, &alpha)
	if alpha["syncing"] != true || alpha["sync_revision"] != float64(rp.Revision) {
		t.Errorf("alpha after republish: %v", alpha)
	}
	if r = gwManage(t, eps, "republish", "nope"); r.code != 1 || !strings.Contains(r.stderr, "bucket not found: nope") {
		t.Errorf("republish of an unknown bucket: %d %s", r.code, r.stderr)
	}

	// Revert the move: back to the v2-era baseline.
	r = gwManage(t, eps, "migrate", "gw", "0001_initial")
	if r.code != 0 || !strings.Contains(r.stdout, "Unapplying gw.0002_v3_store... OK") {
		t.Fatalf("revert: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if n := v3Count(t, cli); n != 0 {
		t.Errorf("after revert %d keys remain", n)
	}
	// A level at a time: the same move. --spool-dir is deprecated (the
	// move keeps nothing on disk) and still accepted.
	r = gwManage(t, eps, "migrate", "gw", "0002_v3_store", "--spool-dir", "none", "--level-reads", "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Steps) != 1 || !strings.Contains(r.stderr, "--spool-dir has been deprecated") {
		t.Fatalf("migrate --spool-dir none --level-reads: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if move := rep.Steps[0].Report; move["created"] != 55.0 || move["v2_reads"].(map[string]any)["whole"] != 0.0 {
		t.Errorf("move report: %v", move)
	}
	if r = gwManage(t, eps, "migrate", "gw", "0001_initial"); r.code != 0 {
		t.Fatalf("revert: %d %s", r.code, r.stderr)
	}
	// --fake records without moving.
	r = gwManage(t, eps, "migrate", "gw", "0002_v3_store", "--fake")
	if r.code != 0 || !strings.Contains(r.stdout, "FAKED") {
		t.Fatalf("--fake: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r = gwManage(t, eps, "showmigrations", "gw"); !strings.Contains(r.stdout, "[X] 0002_v3_store") || v3Count(t, cli) != 1 {
		t.Errorf("after --fake: %q, %d keys", r.stdout, v3Count(t, cli))
	}
}

func TestBadInputIsAClearError(t *testing.T) {
	eps, cli := seededGateway(t)
	dead, err := embed.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		eps  []string
		args []string
		code int
		want string
	}{
		{"unknown app", eps, []string{"migrate", "shop"}, 2, `unknown app "shop" (apps: gw)`},
		{"unknown target", eps, []string{"migrate", "gw", "0009_nope"}, 2, "0001_initial, 0002_v3_store, 0003_published_buckets, 0004_move_state"},
		{"unknown app in showmigrations", eps, []string{"showmigrations", "shop"}, 2, "apps: gw"},
		{"too many arguments", eps, []string{"migrate", "gw", "a", "b"}, 2, "see rok-gw-manage migrate --help"},
		{"relative prefix", eps, []string{"showmigrations", "--gw-prefix", "rok/gw"}, 2, "--gw-prefix must start with /"},
		{"bad limits", eps, []string{"migrate", "--max-txn-ops", "1"}, 2, "--max-txn-ops"},
		{"unreachable etcd", []string{fmt.Sprintf("http://127.0.0.1:%d", dead[0])}, []string{"migrate", "--dial-timeout", "500ms"}, 1, "etcd unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := gwManage(t, tc.eps, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
	if n := v3Count(t, cli); n != 0 {
		t.Errorf("bad input wrote %d keys", n)
	}
}

// SIGINT in the middle of the move: the step is reported INTERRUPTED, not
// OK, with what v3 really holds; running migrate again finishes it.
func TestInterruptedMigrateSaysSoAndCountsWhatEtcdHolds(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	if _, err := seed.Run(context.Background(), embed.NewTestV2(t, m.Endpoints()), seed.Config{
		Docs: 20000, Nodes: []string{"n1"}, Seed: 3, Layout: seed.Layout{Dir: t.TempDir()}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	puts := cli.Watch(ctx, "/rok/gw/", clientv3.WithPrefix())
	cmd := exec.Command(tool, "migrate", "--in-flight", "1", "--endpoints", strings.Join(m.Endpoints(), ","))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-puts // the copy has begun: documents are landing in v3
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("interrupted migrate: %v, want exit 1\n%s%s", err, out.String(), errb.String())
	}
	text := out.String()
	if strings.Contains(text, "... OK") || !strings.Contains(text, "gw.0002_v3_store... INTERRUPTED (not recorded)") {
		t.Fatalf("the interrupted step is not reported as interrupted:\n%s", text)
	}
	want := fmt.Sprintf("v3 holds %d keys under the prefix now", v3Count(t, cli))
	if !strings.Contains(text, want) {
		t.Fatalf("the report does not say what v3 holds (%q):\n%s", want, text)
	}
	if r := gwManage(t, m.Endpoints(), "migrate"); r.code != 0 || !strings.Contains(r.stdout, "gw.0002_v3_store... OK") {
		t.Fatalf("migrate again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
