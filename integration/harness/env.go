package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/upgrade"
	"github.com/rokup/rokup/verify"
)

// Options size an environment.
type Options struct {
	Cluster    string // Embedded (default) or Etcd34
	Docs       int    // Gateway documents seeded
	Objects    int    // storage objects seeded, all nodes together
	Seeded     int    // nodes with storage (1 for a local-mode run); default 3
	Seed       int64  // the installation's seed
	SessionTTL int    // the sidecars' --session-ttl; default 2
}

// Env is one cluster, one seeded installation and three sidecar processes
// (node-1…node-3), each reaching every member through its own proxies.
type Env struct {
	T        testing.TB
	Dir      string
	Bin      string
	Opts     Options
	Cluster  Cluster
	Cli      *clientv3.Client
	V2       clientv2.KeysAPI
	Layout   seed.Layout
	Manifest *seed.Manifest
	Nodes    []string
	Sidecars []*Proc
	// Proxies[i][j] carries sidecar i's traffic to member j.
	Proxies [][]*Proxy
	Store   *upgrade.Store
}

// New starts the cluster, seeds it with `rokup seed`, and prepares (does
// not start) the sidecars. Everything is torn down at the test's end.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Cluster == "" {
		o.Cluster = Embedded
	}
	if o.Seeded == 0 {
		o.Seeded = 3
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 2
	}
	bin, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{T: t, Dir: t.TempDir(), Bin: bin, Opts: o, Nodes: seed.Nodes(3)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.Cluster, err = StartCluster(ctx, o.Cluster, filepath.Join(e.Dir, "etcd"))
	if errors.Is(err, embed.ErrNoEtcd34) {
		embed.Unavailable(t, err) // skips, or fails in CI
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Cluster.Close)
	e.Cli = embed.NewTestClient(t, e.Cluster.Endpoints())
	e.V2 = embed.NewTestV2(t, e.Cluster.Endpoints())
	e.Store = upgrade.NewStore(e.Cli, upgrade.DefaultKeys)
	e.Layout = seed.Layout{Dir: filepath.Join(e.Dir, "storage")}
	manifest := filepath.Join(e.Dir, "manifest.json")
	if out, code := e.Exec("rokup", "seed", "--docs", strconv.Itoa(o.Docs), "--objects", strconv.Itoa(o.Objects),
		"--nodes", strconv.Itoa(o.Seeded), "--seed", strconv.FormatInt(o.Seed, 10), "--dir", e.Layout.Dir,
		"--manifest", manifest, "--workers", "16"); code != 0 {
		t.Fatalf("rokup seed: exit %d\n%s", code, out)
	}
	if e.Manifest, err = seed.ReadManifest(manifest); err != nil {
		t.Fatal(err)
	}
	for i, n := range e.Nodes {
		var eps []string
		var row []*Proxy
		for j := range e.Cluster.Endpoints() {
			// Member i first: the member "this node's" client prefers.
			ep := e.Cluster.Endpoints()[(i+j)%3]
			u, err := url.Parse(ep)
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewProxy(u.Host)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			row = append(row, p)
			eps = append(eps, "http://"+p.Addr())
		}
		// Proxies are indexed by member, not by preference.
		byMember := make([]*Proxy, 3)
		for j, p := range row {
			byMember[(i+j)%3] = p
		}
		e.Proxies = append(e.Proxies, byMember)
		proc := NewProc(n, filepath.Join(e.Dir, n+".log"), filepath.Join(bin, "rokup"), "sidecar",
			"--node", n, "--endpoints", strings.Join(eps, ","),
			"--nodelocal-root", e.Layout.Nodelocal(n), "--local-root", e.Layout.Local(),
			"--gw-prefix", e.Manifest.GWPrefix, "--session-ttl", strconv.Itoa(o.SessionTTL), "--log-level", "info")
		e.Sidecars = append(e.Sidecars, proc)
		// The scenario is judged before teardown: a SIGKILL is the quickest end.
		t.Cleanup(func() { _ = proc.Kill() })
	}
	return e
}

// Exec runs one of the binaries against the cluster and returns its
// combined output and exit status.
func (e *Env) Exec(name string, args ...string) (string, int) {
	return e.ExecEnv(nil, name, append(args, "--endpoints", strings.Join(e.Cluster.Endpoints(), ","))...)
}

// ExecEnv runs a binary with extra environment and exactly args.
func (e *Env) ExecEnv(env []string, name string, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(e.Bin, name), args...)
	cmd.Env = append(cleanEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	return out.String() + err.Error(), -1
}

// cleanEnv drops the variables that would point a binary elsewhere.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ROK_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// StartSidecars starts every sidecar and waits until all are live.
func (e *Env) StartSidecars() {
	e.T.Helper()
	for _, p := range e.Sidecars {
		if err := p.Start(); err != nil {
			e.T.Fatal(err)
		}
	}
	e.WaitLive(len(e.Sidecars))
}

// WaitLive waits until n sidecars are registered.
func (e *Env) WaitLive(n int) {
	e.T.Helper()
	if err := e.Until(60*time.Second, func(ctx context.Context) (bool, error) {
		live, err := upgrade.LiveMembers(ctx, e.Cli, upgrade.DefaultKeys)
		return len(live) == n, err
	}); err != nil {
		e.T.Fatalf("waiting for %d live sidecars: %v\n%s", n, err, e.Logs())
	}
}

// Until polls ok every 10ms until it holds or timeout passes. Errors from
// ok (etcd briefly unavailable during a fault) are retried.
func (e *Env) Until(timeout time.Duration, ok func(ctx context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		done, err := ok(ctx)
		cancel()
		if done && err == nil {
			return nil
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
	if last != nil {
		return fmt.Errorf("timed out after %s (last error: %v)", timeout, last)
	}
	return fmt.Errorf("timed out after %s", timeout)
}

// Start writes the control key with `rokup start` and returns nothing
// until the write is acknowledged.
func (e *Env) Start(id, mode string, nodes ...string) {
	e.T.Helper()
	args := []string{"start", "--id", id, "--mode", mode}
	if len(nodes) > 0 {
		args = append(args, "--nodes", strings.Join(nodes, ","))
	}
	if out, code := e.Exec("rokup", args...); code != 0 {
		e.T.Fatalf("rokup start: exit %d\n%s", code, out)
	}
}

// View reads the run from etcd, as `rokup status --id ID -o json` shows it.
func (e *Env) View(ctx context.Context, id string) (*upgrade.Run, error) {
	return e.Store.View(ctx, id)
}

// WaitRun waits until run id ends and returns it.
func (e *Env) WaitRun(id string, timeout time.Duration) (*upgrade.Run, error) {
	var run *upgrade.Run
	err := e.Until(timeout, func(ctx context.Context) (bool, error) {
		r, err := e.View(ctx, id)
		if err != nil {
			return false, err
		}
		run = r
		return upgrade.Terminal(r.State), nil
	})
	if err != nil {
		st := "no record"
		if run != nil {
			b, _ := json.Marshal(run)
			st = string(b)
		}
		return run, fmt.Errorf("run %s did not end: %v; last state %s", id, err, st)
	}
	return run, nil
}

// Leader returns the index of the sidecar that is master now (the oldest
// key under the election prefix names it), or -1.
func (e *Env) Leader(ctx context.Context) (int, error) {
	resp, err := e.Cli.Get(ctx, upgrade.DefaultKeys.Election(), clientv3.WithFirstCreate()...)
	if err != nil {
		return -1, err
	}
	if len(resp.Kvs) == 0 {
		return -1, nil
	}
	return e.Index(string(resp.Kvs[0].Value)), nil
}

// Index is the sidecar index of node, or -1.
func (e *Env) Index(node string) int {
	for i, n := range e.Nodes {
		if n == node {
			return i
		}
	}
	return -1
}

// RaftLeader returns the index of the member that is raft leader, or -1.
func (e *Env) RaftLeader(ctx context.Context) int {
	for i, ep := range e.Cluster.Endpoints() {
		st, err := e.Cli.Status(ctx, ep)
		if err == nil && st.Header.MemberId == st.Leader {
			return i
		}
	}
	return -1
}

// MemberLease is the lease of node's member key, 0 when it has none: a
// sidecar re-registers under a new lease once it found its session gone.
func (e *Env) MemberLease(ctx context.Context, node string) (int64, error) {
	resp, err := e.Cli.Get(ctx, upgrade.DefaultKeys.Member(node))
	if err != nil || len(resp.Kvs) == 0 {
		return 0, err
	}
	return resp.Kvs[0].Lease, nil
}

// WaitDrained waits until sidecar i's proxies have forwarded every chunk
// they held back or delayed.
func (e *Env) WaitDrained(i int, timeout time.Duration) error {
	return e.Until(timeout, func(context.Context) (bool, error) {
		for _, p := range e.Proxies[i] {
			if !p.Drained() {
				return false, nil
			}
		}
		return true, nil
	})
}

// StopAll stops every sidecar (SIGTERM, waiting for it to exit) and waits
// until no connection is left open through any proxy. From then on no
// sidecar can write: a judge of the history sees every write there will be.
func (e *Env) StopAll() error {
	for _, p := range e.Sidecars {
		if err := p.Stop(20 * time.Second); err != nil {
			return err
		}
	}
	return e.Until(30*time.Second, func(context.Context) (bool, error) {
		for _, row := range e.Proxies {
			for _, p := range row {
				if p.Conns() > 0 {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// Pause stops sidecar i with SIGSTOP for d, then resumes it.
func (e *Env) Pause(i int, d time.Duration) error {
	if err := e.Sidecars[i].Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	time.Sleep(d)
	return e.Sidecars[i].Signal(syscall.SIGCONT)
}

// Partition cuts sidecar i from every member (a blackhole) for d.
func (e *Env) Partition(i int, mode string, delay, d time.Duration) {
	for _, p := range e.Proxies[i] {
		p.Set(mode, delay)
	}
	time.Sleep(d)
	for _, p := range e.Proxies[i] {
		p.Set(Pass, 0)
	}
}

// Logs returns the tail of every sidecar's log, for a failure message.
func (e *Env) Logs() string {
	var b strings.Builder
	for _, p := range e.Sidecars {
		fmt.Fprintf(&b, "--- %s ---\n%s\n", p.Name, p.Tail(3000))
	}
	return b.String()
}

// Invariants are the checks of a scenario.
type Invariants struct {
	Run  *upgrade.Run // the finished run
	Mode string
	// GC, when a GC ran after the run: storage may have lost garbage, so
	// the deletions are judged instead of "no file lost".
	GC bool
	// Before, when set, ends the history the run is judged on: what the
	// scenario did after it (a GC, touches) is no run's write.
	Before int64
}

// Check runs every invariant against etcd, its history and storage.
func (e *Env) Check(iv Invariants) []verify.Check {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cache := libmap.New(e.Cli)
	checks := []verify.Check{
		verify.Gateway(ctx, e.Cli, e.V2, e.Manifest),
		verify.Epochs(ctx, cache, e.Manifest),
		verify.V2EpochsGone(ctx, e.V2, e.Manifest.V2Epochs),
		verify.FenceReleased(ctx, e.Cli),
	}
	if iv.GC {
		// A GC re-stamps the objects it kept and deletes the epoch of those
		// it collected: judge those by the history instead.
		checks = checks[:0:0]
		checks = append(checks, verify.Gateway(ctx, e.Cli, e.V2, e.Manifest), verify.FenceReleased(ctx, e.Cli))
	} else {
		checks = append(checks, verify.StorageIntact(e.Manifest))
	}
	h, err := verify.ReadHistory(ctx, e.Cli, 1)
	if err != nil {
		return append(checks, verify.Check{Name: "history", Detail: err.Error()})
	}
	run, runH := iv.Run, h.Upto(iv.Before)
	keys := upgrade.DefaultKeys
	// The run ends at its first terminal record after the last control
	// write (a re-run starts it again): from there on, no master of it may
	// write. The last terminal record would hide a deposed master's late
	// write that flipped the record back to running and made the new
	// master run the steps again.
	lastControl := h.RevOf(keys.Control(), func([]byte) bool { return true })
	until := runH.FirstAfter(keys.Run(run.ID), lastControl, func(v []byte) bool {
		var r upgrade.Run
		return json.Unmarshal(v, &r) == nil && upgrade.Terminal(r.State)
	})
	lo := verify.LeaderOnly{Prefixes: []string{e.Manifest.GWPrefix + "/"}, Keys: []string{fencing.DefaultFenceKey, keys.Run(run.ID)}}
	if iv.Mode != "local" {
		// In local mode the one node stamps the CA scopes (epochs-all).
		lo.Prefixes = append(lo.Prefixes, cache.ScopePrefix(libmap.MapsCA, ""), cache.ScopePrefix(libmap.ChocksCA, ""))
	}
	checks = append(checks,
		verify.LeaderWrites(runH, keys.Election(), lo, run.Terms, until),
		verify.FenceWindow(runH, fencing.DefaultFenceKey, cache.Prefix(), "upgrade/"+run.ID, run.ControlRev, until, run.State == upgrade.StateDone),
		verify.Deletions(h, cache, e.Manifest),
	)
	return checks
}
