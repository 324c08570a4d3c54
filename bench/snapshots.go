package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/rokup/rokup/internal/backoff"
)

// etcd takes a snapshot of its store every SnapshotCount applied entries
// (100 000 by default), wherever the count falls: it clones its v2 store
// on the apply path, encodes it as JSON and writes it out. After the
// bench's seeding the v2 store holds 1.2 million nodes (a 370 MB
// snapshot), and one snapshot costs etcd seconds of processor time: a path
// it falls in is slower by that, and a comparison with a path it missed
// is uneven. On 2026-12-02 the Gateway ceiling took 1.3 etcd CPU-s in one
// run and 3.5 in the next, at 145 000 and 80 000 keys/s. So on its own
// member the bench brings the next snapshot forward, between paths, when
// a path could meet it (clearSnapshot), and every path says how many
// snapshots etcd took while it ran.

// snapshotCount is the bench member's SnapshotCount: etcd 3.5's default,
// set explicitly so that the bench can count the entries to the next
// snapshot and keep it out of the paths it times (clearSnapshot).
const snapshotCount = 100_000

// snapMetric is etcd's histogram of snapshot saves (file written and
// synced; the clone and the JSON before it are not in its seconds).
const snapMetric = "etcd_debugging_snap_save_total_duration_seconds"

// Snapshots is what etcd saved while a path ran.
type Snapshots struct {
	Count int64 `json:"count"`
	// WriteSeconds is etcd's own time for writing and syncing them.
	WriteSeconds float64 `json:"write_s"`
}

// snapshots reads the member's snapshot count from its /metrics.
func (m *member) snapshots(ctx context.Context) (Snapshots, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.urls[0]+"/metrics", nil)
	if err != nil {
		return Snapshots{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Snapshots{}, fmt.Errorf("bench: read the etcd member's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Snapshots{}, fmt.Errorf("bench: read the etcd member's metrics: %s", resp.Status)
	}
	return parseSnapshots(bufio.NewScanner(resp.Body))
}

// parseSnapshots finds snapMetric's count and sum in Prometheus's text
// format.
func parseSnapshots(sc *bufio.Scanner) (Snapshots, error) {
	var s Snapshots
	var found int
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, snapMetric+"_") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return Snapshots{}, fmt.Errorf("bench: etcd metric %s: %w", name, err)
		}
		switch name {
		case snapMetric + "_count":
			s.Count = int64(v)
			found++
		case snapMetric + "_sum":
			s.WriteSeconds = v
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return Snapshots{}, fmt.Errorf("bench: read the etcd member's metrics: %w", err)
	}
	if found != 2 {
		return Snapshots{}, fmt.Errorf("bench: the etcd member's metrics have no %s", snapMetric)
	}
	return s, nil
}

// since is what was saved from before to s.
func (s Snapshots) since(before Snapshots) *Snapshots {
	return &Snapshots{Count: s.Count - before.Count, WriteSeconds: round2(s.WriteSeconds - before.WriteSeconds)}
}

func (s *Snapshots) String() string {
	return fmt.Sprintf("%d snapshot%s of its store (%.1fs to write)", s.Count, plural(s.Count), s.WriteSeconds)
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// snapshotNote is what p's note says when etcd took snapshots during p
// or during the path it is compared with (what, named), but not during
// both: the comparison is then uneven. Empty when both are unknown or
// even.
func snapshotNote(p, other *Path, what string) string {
	a, b := p.EtcdSnapshots, other.EtcdSnapshots
	if a == nil || b == nil || (a.Count > 0) == (b.Count > 0) {
		return ""
	}
	if a.Count > 0 {
		return fmt.Sprintf("uneven against the %s: etcd took %s during this path and none during the %s", what, a, what)
	}
	return fmt.Sprintf("uneven against the %s: etcd took %s during the %s and none during this path", what, b, what)
}

// clearSnapshot keeps etcd's next snapshot out of the path about to be
// timed. etcd snapshots once it has applied more than snapCount entries
// since its last snapshot; a path of the acceptance size applies at most
// a few thousand (the epoch update's million stamps are 8 000
// transactions), so a path that starts with at least half of snapCount
// left cannot meet it. With fewer left, the bench spends them here, on
// puts of one scratch key, waits until the snapshot is saved, and drops
// the key's history: the snapshot then falls between paths, in no one's
// time. It only counts for the bench's own member; a path larger than
// the margin still meets snapshots, and its note says so.
func (r *runner) clearSnapshot(ctx context.Context) error {
	m := r.env.member
	if m == nil || m.data == "" || m.snapCount == 0 {
		return nil
	}
	pad := r.env.keys.Scratch + "/snapshot-pad"
	for range 3 { // a snapshot being saved as we count is one more round
		left, err := m.entriesToSnapshot(ctx, r.env.cli)
		if err != nil {
			return err
		}
		if left >= int64(m.snapCount/2) {
			return nil
		}
		before, err := m.snapshots(ctx)
		if err != nil {
			return err
		}
		r.cfg.Log(fmt.Sprintf("etcd's next snapshot is %d entries away: bringing it forward", left))
		if err := padEntries(ctx, r.env.cli, pad+"/k", max(left, 0)+1); err != nil {
			return fmt.Errorf("bench: bring etcd's snapshot forward: %w", err)
		}
		if err := m.awaitSnapshot(ctx, before.Count); err != nil {
			return err
		}
		if err := r.dropScratch(ctx, pad); err != nil {
			return err
		}
	}
	return fmt.Errorf("bench: etcd's next snapshot is still near after three snapshots were brought forward")
}

// entriesToSnapshot is how many more entries etcd applies before it takes
// its next snapshot: the last one's index is in its snapshot files' names
// (<term>-<index>.snap, 0 before the first), the applied index in its
// status.
func (m *member) entriesToSnapshot(ctx context.Context, cli *clientv3.Client) (int64, error) {
	st, err := cli.Status(ctx, m.urls[0])
	if err != nil {
		return 0, fmt.Errorf("bench: etcd member's status: %w", err)
	}
	snapi, err := lastSnapshotIndex(filepath.Join(m.data, "member", "snap"))
	if err != nil {
		return 0, err
	}
	return int64(snapi) + int64(m.snapCount) + 1 - int64(st.RaftAppliedIndex), nil
}

// lastSnapshotIndex is the highest index among dir's snapshot files.
func lastSnapshotIndex(dir string) (uint64, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.snap"))
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, n := range names {
		var term, index uint64
		if _, err := fmt.Sscanf(filepath.Base(n), "%016x-%016x.snap", &term, &index); err != nil {
			return 0, fmt.Errorf("bench: etcd snapshot file %s: %w", n, err)
		}
		last = max(last, index)
	}
	if len(names) == 0 {
		if _, err := os.Stat(dir); err != nil && !os.IsNotExist(err) {
			return 0, err
		}
	}
	return last, nil
}

// padEntries makes n raft entries: n puts of key, 32 at once.
func padEntries(ctx context.Context, cli *clientv3.Client, key string, n int64) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range 32 {
		g.Go(func() error {
			for next.Add(1) <= n {
				if _, err := cli.Put(gctx, key, ""); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// awaitSnapshot waits until etcd has saved a snapshot past count.
func (m *member) awaitSnapshot(ctx context.Context, count int64) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		s, err := m.snapshots(ctx)
		if err != nil {
			return err
		}
		if s.Count > count {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: etcd saved no snapshot within 5 minutes of its snapshot count")
		}
		if backoff.Sleep(ctx, 50*time.Millisecond); ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
