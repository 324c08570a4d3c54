package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
)

// forcedGCs is how many collections this process was asked for.
func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// The bench's member serves the heap profile, and asking for it with gc=1
// collects the member's heap before answering. The member runs in this
// process here, so the collection shows in this runtime's count.
func TestSettleCollectsTheMembersHeap(t *testing.T) {
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := memberConfig(filepath.Join(t.TempDir(), "etcd"), fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	cfg.NoFsync = true
	m, err := embed.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	child := &member{child: &exec.Cmd{}, urls: m.Endpoints()}
	before := forcedGCs()
	if err := child.settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := forcedGCs(); got <= before {
		t.Fatalf("settle answered without a collection (forced collections %d, then %d)", before, got)
	}
}

// Every timed path starts on a collected member: measure asks the child
// member for its collection before it times anything.
func TestMeasureSettlesTheMemberBeforeTiming(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/debug/pprof/heap" && req.URL.Query().Get("gc") == "1" {
			asked.Add(1)
			return
		}
		http.NotFound(w, req)
	}))
	defer srv.Close()
	// The read buffer is emptied through the client: a lease granted and
	// revoked (see emptyReadBuffer), counted here.
	cli := embed.NewTestClient(t, embed.NewTestMember(t).Endpoints())
	leases := &countingLease{Lease: cli.Lease}
	cli.Lease = leases
	var logged []string
	r := &runner{cfg: Config{Log: func(s string) { logged = append(logged, s) }}, env: &env{cli: cli, member: &member{child: &exec.Cmd{}, urls: []string{srv.URL}}}, res: &Result{}}
	for _, name := range []string{"first", "second"} {
		n, g, rv := asked.Load(), leases.granted.Load(), leases.revoked.Load()
		if err := r.measure(name, func(p *Path) error {
			if asked.Load() != n+1 {
				t.Errorf("%s was timed before the member was collected (asked %d times, then %d)", name, n, asked.Load())
			}
			if leases.granted.Load() != g+1 || leases.revoked.Load() != rv+1 {
				t.Errorf("%s was timed before etcd's read buffer was emptied (leases granted %d → %d, revoked %d → %d)", name, g, leases.granted.Load(), rv, leases.revoked.Load())
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Each path's result is said as soon as it is measured.
	if !slices.ContainsFunc(logged, func(s string) bool { return strings.HasPrefix(s, "second: 0 in ") }) {
		t.Errorf("no result logged for the second path: %q", logged)
	}
	// A member that cannot collect fails the path, naming why, instead of
	// timing it on a heap in an unknown state.
	srv.Config.Handler = http.NotFoundHandler()
	if err := r.measure("third", func(*Path) error { return nil }); err == nil {
		t.Fatal("measure timed a path whose member did not answer the collection")
	}
}

// countingLease counts the leases granted and revoked through it.
type countingLease struct {
	clientv3.Lease
	granted, revoked atomic.Int64
}

func (l *countingLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	l.granted.Add(1)
	return l.Lease.Grant(ctx, ttl)
}

func (l *countingLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	l.revoked.Add(1)
	return l.Lease.Revoke(ctx, id)
}
