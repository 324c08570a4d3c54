package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

// buildTool builds rok-gw-manage into a temporary directory.
func buildTool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rok-gw-manage")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/rokup/rokup/cmd/rok-gw-manage").CombinedOutput()
	if err != nil {
		t.Fatalf("go build rok-gw-manage: %v\n%s", err, out)
	}
	return bin
}

// killMidCopy starts rok-gw-manage migrate and kills it with SIGKILL once
// v3 holds at least 100 of the documents.
func killMidCopy(t *testing.T, bin string, e *testEnv) {
	t.Helper()
	ctx := ctxT(t)
	// One document per transaction, one transaction at a time: slow
	// enough to be killed in the middle.
	cmd := exec.Command(bin, "migrate", "--endpoints", strings.Join(e.eps, ","), "--max-txn-ops", "3", "--in-flight", "1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		resp, err := e.cli.Get(ctx, e.store.prefix+"/objects/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count >= 100 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("rok-gw-manage ended before it could be killed: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("rok-gw-manage was not killed: %v", cmd.ProcessState)
	}
	ex := e.executor(t, MoveOptions{})
	if got := strings.Join(appliedKeys(t, ex), " "); got != "gw.0001_initial" {
		t.Fatalf("a killed move was recorded: %s", got)
	}
	if applied, err := ex.Applied(ctx); err != nil || applied[V3Store] != Partial {
		t.Fatalf("a killed move is %q (%v), want partial", applied[V3Store], err)
	}
}

func TestMoveKilledWithSIGKILLConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rok-gw-manage")
	}
	bin := buildTool(t)
	e := newEnv(t, small)
	ctx := ctxT(t)
	before := snapshot(t, e.cli)
	killMidCopy(t, bin, e)
	results, err := e.migrate(ctx, t, "", "", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep := results[0].Result.Report.(MoveReport)
	if rep.Checksum != expectedChecksum(e.store) || rep.Identical == 0 || rep.Created+rep.Identical != rep.Docs {
		t.Errorf("after SIGKILL: %+v", rep)
	}
	e.assertMoved(t, true)

	// The revert deletes what both runs created, the killed one's too.
	if _, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	assertSameKeys(t, before, snapshot(t, e.cli))
}

func TestMoveKilledWithSIGKILLReverts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rok-gw-manage")
	}
	bin := buildTool(t)
	e := newEnv(t, small)
	ctx := ctxT(t)
	before := snapshot(t, e.cli)
	killMidCopy(t, bin, e)
	results, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || !results[0].Backward || results[0].Key != V3Store {
		t.Fatalf("revert ran %v, want 0002 backwards", results)
	}
	if rep := results[0].Result.Report.(RevertReport); rep.Deleted < 100 {
		t.Errorf("revert deleted %d keys, the killed move had created 100 or more", rep.Deleted)
	}
	assertSameKeys(t, before, snapshot(t, e.cli))
	// And the move runs again from scratch.
	if _, err := e.migrate(ctx, t, "", "", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	e.assertMoved(t, true)
}

// assertSameKeys checks v3 holds exactly what it held before.
func assertSameKeys(t testing.TB, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed or removed", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s left behind", k)
		}
	}
}

// externalEtcd starts Debian's etcd 3.4 on free ports, killed when the
// test ends.
func externalEtcd(t *testing.T, enableV2 bool) []string {
	t.Helper()
	bin := embed.NeedEtcd34(t)
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	cmd := exec.Command(bin, "--name", "ext", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ext="+peer, fmt.Sprintf("--enable-v2=%t", enableV2))
	logf, err := os.Create(filepath.Join(t.TempDir(), "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	cli := embed.NewTestClient(t, []string{client})
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "/ping")
		cancel()
		if err == nil {
			return []string{client}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("external etcd did not answer: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMigrateAgainstExternalEtcd34(t *testing.T) {
	eps := externalEtcd(t, true)
	kapi := embed.NewTestV2(t, eps)
	e := &testEnv{eps: eps, cli: embed.NewTestClient(t, eps), kapi: kapi, store: seed(t, kapi, DefaultPrefix, seedSize{docs: 1500, big: true, ttls: 12, ledge: true})}
	ctx := ctxT(t)
	before := snapshot(t, e.cli)
	start := time.Now()
	results, err := e.migrate(ctx, t, "", "", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.assertMoved(t, true)
	// etcd 3.4's v2 API serves whole-subtree reads, and its index proves
	// v2 unchanged, as 3.5's do.
	if rep, ok := results[0].Result.Report.(MoveReport); !ok || rep.V2Reads.Whole == 0 || !rep.FastVerify {
		t.Errorf("move on etcd 3.4: %d whole reads of %d, fast verify %v", rep.V2Reads.Whole, rep.V2Reads.Reads, rep.FastVerify)
	}
	for k, ttl := range e.store.ttl {
		resp, _ := e.cli.Get(ctx, k)
		tl, err := e.cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
		if err != nil {
			t.Fatal(err)
		}
		// Up to 1% more than the v2 TTL: the shared lease window.
		if got := time.Duration(tl.TTL) * time.Second; got < ttl-time.Since(start)-2*time.Second || got > ttl+ttl/100+2*time.Second {
			t.Errorf("%s: %s left of %s", k, got, ttl)
		}
	}
	if got := strings.Join(appliedKeys(t, e.executor(t, MoveOptions{})), " "); got != "gw.0001_initial gw.0002_v3_store gw.0003_published_buckets gw.0004_move_state" {
		t.Errorf("ledger: %s", got)
	}
	if again, err := e.migrate(ctx, t, "", "", MoveOptions{}); err != nil || len(again) != 0 {
		t.Errorf("second migrate: %v %v", again, err)
	}

	// A Gateway 0.14 write, then the revert: only that write stays.
	created := e.store.prefix + "/objects/new-in-0.14"
	if _, err := e.cli.Put(ctx, created, "Gateway 0.14"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	before[created] = "Gateway 0.14"
	assertSameKeys(t, before, snapshot(t, e.cli))
}

func TestV2DisabledIsAClearError(t *testing.T) {
	eps := externalEtcd(t, false)
	cli := embed.NewTestClient(t, eps)
	ex, err := NewExecutor(GW(), Env{V3: cli, V2: embed.NewTestV2(t, eps)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ex.Applied(ctxT(t))
	if !errors.Is(err, conn.ErrV2Disabled) || !strings.Contains(err.Error(), "--enable-v2") {
		t.Fatalf("want ErrV2Disabled saying how to enable it, got %v", err)
	}
	if resp, _ := cli.Get(context.Background(), "/", clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
		t.Errorf("%d keys written", resp.Count)
	}
}
