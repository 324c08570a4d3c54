package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// etcd takes a snapshot of its store every SnapshotCount applied entries
// (100 000 by default), wherever the count falls: it clones its v2 store
// on the apply path, encodes it as JSON and writes it out. After the
// bench's seeding the v2 store holds 1.2 million nodes (a 370 MB
// snapshot), and one snapshot costs etcd seconds of processor time: a path
// it falls in is slower by that, and a comparison with a path it missed
// is uneven. On 2026-12-02 the Gateway ceiling took 1.3 etcd CPU-s in one
// run and 3.5 in the next, at 145 000 and 80 000 keys/s. So every path
// says how many snapshots etcd took while it ran.

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
