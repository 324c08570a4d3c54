package bench

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
)

// A path during which etcd saved snapshots of its store says how many: a
// member that snapshots every 100 entries takes one during a path of 250
// puts, and none during a path that writes nothing.
func TestMeasureCountsTheMembersSnapshots(t *testing.T) {
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := memberConfig(filepath.Join(t.TempDir(), "etcd"), fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	cfg.NoFsync, cfg.SnapshotCount = true, 100
	em, err := embed.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	m := &member{inProc: em, urls: em.Endpoints()}
	cli := embed.NewTestClient(t, em.Endpoints())
	r := &runner{cfg: Config{Log: func(string) {}}, env: &env{cli: cli, member: m}, res: &Result{}}
	ctx := context.Background()

	if err := r.measure("writes", func(p *Path) error {
		before, err := m.snapshots(ctx)
		if err != nil {
			return err
		}
		for i := range 250 {
			if _, err := cli.Put(ctx, fmt.Sprintf("/k/%d", i), "v"); err != nil {
				return err
			}
		}
		// etcd saves a snapshot in the background once it is due: wait
		// for it, so that the path ends after it.
		for deadline := time.Now().Add(30 * time.Second); ; {
			now, err := m.snapshots(ctx)
			if err != nil {
				return err
			}
			if now.Count > before.Count {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no snapshot after 250 entries at a snapshot count of 100 (%d before, %d now)", before.Count, now.Count)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.measure("idle", func(*Path) error { return nil }); err != nil {
		t.Fatal(err)
	}
	writes, idle := r.res.Paths[0], r.res.Paths[1]
	if writes.EtcdSnapshots == nil || writes.EtcdSnapshots.Count < 1 {
		t.Fatalf("the writing path reports %v, want at least one snapshot", writes.EtcdSnapshots)
	}
	if !strings.Contains(writes.Note, "snapshot") {
		t.Errorf("the writing path's note does not name the snapshot: %q", writes.Note)
	}
	if idle.EtcdSnapshots == nil || idle.EtcdSnapshots.Count != 0 {
		t.Fatalf("the idle path reports %v, want a known zero", idle.EtcdSnapshots)
	}
	if strings.Contains(idle.Note, "snapshot") {
		t.Errorf("the idle path's note names a snapshot: %q", idle.Note)
	}
	// Compared with each other, the writing path is uneven; finish says so.
	if got := snapshotNote(&idle, &writes, "ceiling"); !strings.Contains(got, "during the ceiling and none during this path") {
		t.Errorf("snapshotNote(idle, writes) = %q", got)
	}
}

func TestSnapshotNoteOnlyWhenUneven(t *testing.T) {
	none, one, two := &Snapshots{}, &Snapshots{Count: 1, WriteSeconds: 1.25}, &Snapshots{Count: 2, WriteSeconds: 2}
	for _, c := range []struct {
		p, other *Snapshots
		want     string
	}{
		{nil, one, ""},
		{one, nil, ""},
		{none, none, ""},
		{one, two, ""},
		{one, none, "uneven against the ceiling: etcd took 1 snapshot of its store (1.2s to write) during this path and none during the ceiling"},
		{none, two, "uneven against the ceiling: etcd took 2 snapshots of its store (2.0s to write) during the ceiling and none during this path"},
	} {
		got := snapshotNote(&Path{EtcdSnapshots: c.p}, &Path{EtcdSnapshots: c.other}, "ceiling")
		if got != c.want {
			t.Errorf("snapshotNote(%+v, %+v) = %q, want %q", c.p, c.other, got, c.want)
		}
	}
}

func TestParseSnapshotsReadsTheHistogramOrFails(t *testing.T) {
	const text = `# HELP etcd_debugging_snap_save_total_duration_seconds The total latency distributions of save called by snapshot.
# TYPE etcd_debugging_snap_save_total_duration_seconds histogram
etcd_debugging_snap_save_total_duration_seconds_bucket{le="0.001"} 0
etcd_debugging_snap_save_total_duration_seconds_sum 3.5
etcd_debugging_snap_save_total_duration_seconds_count 2
etcd_debugging_snap_save_marshalling_duration_seconds_count 7
`
	got, err := parseSnapshots(bufio.NewScanner(strings.NewReader(text)))
	if err != nil || got != (Snapshots{Count: 2, WriteSeconds: 3.5}) {
		t.Fatalf("parseSnapshots = %+v, %v; want 2 snapshots, 3.5s", got, err)
	}
	for name, bad := range map[string]string{
		"no metric":   "etcd_debugging_snap_save_marshalling_duration_seconds_count 7\n",
		"no sum":      "etcd_debugging_snap_save_total_duration_seconds_count 2\n",
		"not a value": "etcd_debugging_snap_save_total_duration_seconds_sum x\netcd_debugging_snap_save_total_duration_seconds_count 2\n",
	} {
		if s, err := parseSnapshots(bufio.NewScanner(strings.NewReader(bad))); err == nil {
			t.Errorf("%s: parseSnapshots = %+v, want an error", name, s)
		}
	}
}

// A path that would start near etcd's next snapshot starts after it
// instead: clearSnapshot spends the entries left, waits for the snapshot,
// and leaves at least half the snapshot count before the next, and no
// scratch key behind. Far from a snapshot it writes nothing.
func TestClearSnapshotBringsTheSnapshotForward(t *testing.T) {
	const count = 200
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "etcd")
	cfg := memberConfig(data, fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	cfg.NoFsync, cfg.SnapshotCount = true, count
	em, err := embed.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	m := &member{inProc: em, urls: em.Endpoints(), data: data, snapCount: count}
	cli := embed.NewTestClient(t, em.Endpoints())
	r := &runner{cfg: Config{Log: func(string) {}}, env: &env{cli: cli, member: m, keys: defaultKeys()}, res: &Result{}}
	ctx := context.Background()

	left := func() int64 {
		t.Helper()
		n, err := m.entriesToSnapshot(ctx, cli)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	snaps := func() int64 {
		t.Helper()
		s, err := m.snapshots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s.Count
	}
	// Far from it (a fresh member has applied a handful of entries):
	// nothing is written.
	st, err := cli.Status(ctx, m.urls[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := r.clearSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if st2, err := cli.Status(ctx, m.urls[0]); err != nil || st2.Header.Revision != st.Header.Revision {
		t.Fatalf("clearSnapshot far from a snapshot wrote: revision %d, then %d (%v)", st.Header.Revision, st2.Header.Revision, err)
	}
	// Near it: a user's puts until a quarter of the count is left.
	for i := range left() - count/4 {
		if _, err := cli.Put(ctx, fmt.Sprintf("/user/%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if n := left(); n >= count/2 || n <= 0 {
		t.Fatalf("setup: %d entries left before the snapshot, want fewer than %d", n, count/2)
	}
	before := snaps()
	if err := r.clearSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if got := snaps(); got <= before {
		t.Fatalf("no snapshot was brought forward (%d before, %d after)", before, got)
	}
	if n := left(); n < count/2 {
		t.Fatalf("after clearSnapshot %d entries are left before the next snapshot, want at least %d", n, count/2)
	}
	resp, err := cli.Get(ctx, r.env.keys.Scratch+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("clearSnapshot left %d scratch keys (%v)", resp.Count, err)
	}
	if resp, err := cli.Get(ctx, "/user/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count == 0 {
		t.Fatalf("the user's keys are gone (%v)", err)
	}
}
