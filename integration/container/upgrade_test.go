package container

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/upgrade"
)

// TestUpgradeInContainers is the upgrade as an operator runs it with the
// image: three sidecars as containers (host network; each node's storage
// roots and a work dir for its /tmp as volumes; the image's non-root
// user) against a 3-member Debian etcd 3.4 cluster seeded with
// `rokup seed`; the operator's `rokup start --wait` from the host. The
// master's container is killed (SIGKILL) as soon as it fenced GC and
// started again; the run must still end done, with another master
// having taken over, and every data-safety check must hold.
func TestUpgradeInContainers(t *testing.T) {
	img := needImage(t)
	e := harness.New(t, harness.Options{Cluster: harness.Etcd34, Docs: 2000, Objects: 6000, Seed: 19})
	const id = "upgrade-0.14"

	ports, err := embed.FreePorts(len(e.Nodes))
	if err != nil {
		t.Fatal(err)
	}
	eps := e.Cluster.Endpoints()
	var cs []*Container
	for i, n := range e.Nodes {
		work := filepath.Join(e.Dir, "containers", n, "tmp")
		if err := os.MkdirAll(work, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(work, 0o1777); err != nil { // the image's user's $TMPDIR
			t.Fatal(err)
		}
		// This node's member first, as a node's sidecar would list them.
		mine := append(append([]string{}, eps[i:]...), eps[:i]...)
		cs = append(cs, Run(t, img, fmt.Sprintf("rokup-test-%d-%s", os.Getpid(), n),
			[]string{
				e.Layout.Nodelocal(n) + ":/var/lib/rok/nodelocal",
				e.Layout.Local() + ":/var/lib/rok/local",
				work + ":/tmp",
			},
			"rokup", "sidecar", "--node", n, "--endpoints", strings.Join(mine, ","),
			"--nodelocal-root", "/var/lib/rok/nodelocal", "--local-root", "/var/lib/rok/local",
			"--gw-prefix", e.Manifest.GWPrefix, "--session-ttl", "2",
			"--listen-metrics", "127.0.0.1:"+strconv.Itoa(ports[i])))
	}
	logs := func() string {
		var b strings.Builder
		for i, c := range cs {
			fmt.Fprintf(&b, "--- container %s ---\n%s\n", e.Nodes[i], c.Logs())
		}
		return b.String()
	}
	// Each container answers the probes the Kubernetes manifest uses.
	for i := range cs {
		url := fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[i])
		if err := e.Until(60*time.Second, func(ctx context.Context) (bool, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		}); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, logs())
		}
	}
	e.WaitLive(len(cs))

	// The kill lands at the run's first write of its own: the fence.
	fenced, cancel := e.Trigger(func(key string, v []byte, deleted bool) bool {
		return key == fencing.DefaultFenceKey && !deleted
	})
	defer cancel()
	type result struct {
		out  string
		code int
	}
	started := make(chan result, 1)
	go func() {
		out, code := e.Exec("rokup", "start", "--id", id, "--mode", "nodelocal", "--wait")
		started <- result{out, code}
	}()
	select {
	case <-fenced:
	case r := <-started:
		t.Fatalf("rokup start --wait ended (exit %d) before GC was fenced:\n%s\n%s", r.code, r.out, logs())
	case <-time.After(90 * time.Second):
		t.Fatalf("GC never fenced\n%s", logs())
	}
	ctx, cancelCtx := context.WithTimeout(context.Background(), 10*time.Second)
	master, err := e.Leader(ctx)
	cancelCtx()
	if err != nil || master < 0 {
		t.Fatalf("no master once GC was fenced: %d, %v", master, err)
	}
	if err := cs[master].Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancelCtx = context.WithTimeout(context.Background(), 10*time.Second)
	mid, err := e.View(ctx, id)
	cancelCtx()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s's container (the master) with the run %s", e.Nodes[master], mid.State)
	if err := cs[master].Start(); err != nil {
		t.Fatal(err)
	}

	var r result
	select {
	case r = <-started:
	case <-time.After(150 * time.Second):
		t.Fatalf("rokup start --wait did not return\n%s", logs())
	}
	if r.code != 0 {
		t.Fatalf("rokup start --wait: exit %d\n%s\n%s", r.code, r.out, logs())
	}
	run, err := e.WaitRun(id, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != upgrade.StateDone {
		t.Fatalf("run ended %s: %s\n%s", run.State, run.Error, logs())
	}
	// The run outlived its master: a later term finished it.
	if len(run.Terms) < 2 {
		b, _ := json.Marshal(run.Terms)
		t.Errorf("the run has terms %s: the killed master's was not taken over (killed while %s)", b, mid.State)
	}
	// The restarted container stamped its own storage again or before.
	for _, s := range run.Steps {
		if s.Node == e.Nodes[master] && s.Name == upgrade.StepNodelocal && s.State != upgrade.StateDone {
			t.Errorf("%s on the restarted %s ended %s", s.Name, s.Node, s.State)
		}
	}

	// What Prometheus scrapes (the manifest's annotations): every
	// sidecar, the restarted one too, shows the run done.
	done := regexp.MustCompile(`(?m)^rokup_run_state\{[^}]*run="` + regexp.QuoteMeta(id) + `",state="done"\} 1$`)
	rss := regexp.MustCompile(`(?m)^process_resident_memory_bytes (\S+)$`)
	for i := range cs {
		url := fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[i])
		var body []byte
		if err := e.Until(30*time.Second, func(ctx context.Context) (bool, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			body, err = io.ReadAll(resp.Body)
			return done.Match(body), err
		}); err != nil {
			t.Errorf("%s shows no rokup_run_state of run %s done: %v\n%s", url, id, err, body)
			continue
		}
		if m := rss.FindSubmatch(body); m != nil {
			if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
				t.Logf("%s's sidecar: resident memory %.0f MiB after the run", e.Nodes[i], v/(1<<20))
			}
		}
	}

	// SIGTERM stops each sidecar cleanly (exit 0), as systemd and the
	// kubelet stop it; no sidecar writes after this.
	for i, c := range cs {
		code, err := c.Stop(20 * time.Second)
		if err != nil || code != 0 {
			t.Errorf("stopping %s's container: exit %d, %v\n%s", e.Nodes[i], code, err, c.Logs())
		}
	}
	for _, c := range e.Check(harness.Invariants{Run: run, Mode: "nodelocal"}) {
		if !c.OK {
			t.Errorf("invariant broken: %s: %s", c.Name, c.Detail)
		}
	}
}
