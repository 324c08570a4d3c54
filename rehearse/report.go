package rehearse

import (
	"fmt"
	"io"
	"strings"
)

// Report is what a rehearsal found and measured; rokup rehearse -o json
// prints it.
type Report struct {
	DataDir string `json:"data_dir"`
	// WorkDir holds the copy; it is gone after the rehearsal unless Kept.
	WorkDir string `json:"work_dir"`
	Kept    bool   `json:"kept"`
	// Copied is what was copied of the data directory.
	CopiedFiles int64   `json:"copied_files"`
	CopiedBytes int64   `json:"copied_bytes"`
	CopySeconds float64 `json:"copy_seconds"`
	// Live is what was read from a live cluster (rehearse --endpoints)
	// instead of a data directory.
	Live *LiveRead `json:"live,omitempty"`

	Etcd       string `json:"etcd"`        // the version that served the copy
	V2Index    uint64 `json:"v2_index"`    // the copy's v2 index when served
	V3Revision int64  `json:"v3_revision"` // the copy's v3 revision when served
	GWPrefix   string `json:"gw_prefix"`

	Store Store `json:"store"`
	// Applied lists the migrations applied before (in the v2 or v3
	// ledger); Plan those the real run would apply.
	Applied []string `json:"applied"`
	Plan    []string `json:"plan"`

	// Problems are what would make the real run fail or be refused, each
	// named; empty when it would succeed.
	Problems []Problem `json:"problems"`
	// Notes are what the operator should know but does not stop the run,
	// and what the rehearsal did differently to measure past a problem.
	Notes []string `json:"notes,omitempty"`

	// Verified is true when the move proved itself on the copy: v3 held
	// every v2 document's bytes (Checksum) and v2 had not moved.
	Verified bool   `json:"verified"`
	Checksum string `json:"checksum,omitempty"`

	Steps    []Step   `json:"steps"`
	Downtime Downtime `json:"gateway_downtime"`
	// OK is true when the real run would succeed: no problems.
	OK bool `json:"ok"`
}

// Store is what the Gateway store and the v2 epoch cache hold.
type Store struct {
	// Docs are the Gateway documents under the prefix, the v2-era
	// ledger entries (LedgerEntries, moved along with them) excluded.
	Docs          int64    `json:"docs"`
	LedgerEntries int64    `json:"ledger_entries"`
	Bytes         int64    `json:"bytes"` // value bytes of every document moved
	TTLDocs       int64    `json:"ttl_docs"`
	EmptyDirs     int64    `json:"empty_dirs"`
	EmptyDirList  []string `json:"empty_dir_list,omitempty"`
	// Published are the published buckets: their registry sync stops
	// with the move until they are re-published.
	Published   []string `json:"published_buckets"`
	V2EpochKeys int64    `json:"v2_epoch_keys"`
}

// Problem is one reason the real run would fail or be refused.
type Problem struct {
	Check  string `json:"check"`          // gateway, oversize, conflict, fence, runs, migrate, step
	Key    string `json:"key,omitempty"`  // the key at fault, when there is one
	Size   int64  `json:"size,omitempty"` // an oversize document's value bytes
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Check + ": " + p.Detail }

// Step is one step of the run as rehearsed.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Items   int64   `json:"items"`
	PerSec  float64 `json:"per_s,omitempty"`
	Note    string  `json:"note,omitempty"`
	Error   string  `json:"error,omitempty"`
	// Phases splits the move (seconds): copy, which reads v2 as it
	// writes (read: until v2 was read whole), and verify.
	Phases map[string]float64 `json:"phase_seconds,omitempty"`
}

// Downtime is the Gateway's predicted downtime: it is stopped before the
// run starts and may start again once gw-migrate is done.
type Downtime struct {
	Seconds    float64 `json:"seconds"`
	MoveDocsPS float64 `json:"move_docs_per_s"`
	Basis      string  `json:"basis"`
}

// hardware is said with every prediction.
const hardware = "measured here, on this machine's disk and CPU against a one-member copy on loopback; " +
	"the cluster's own disks, network, member count and load move it (rokup bench --endpoints against staging measures those)"

// Text prints the report for a terminal.
func (r *Report) Text(w io.Writer) {
	kept := map[bool]string{true: ", kept", false: ", removed"}[r.Kept]
	if l := r.Live; l != nil {
		fmt.Fprintf(w, "Rehearsal of the live cluster %s, read only (copy in %s%s)\n", strings.Join(l.Endpoints, ","), r.WorkDir, kept)
		fmt.Fprintf(w, "  read %d v2 keys and %d empty directories (at v2 index %d) and %d v3 keys (at revision %d) in %.1fs; served by etcd %s\n",
			l.V2Keys, l.V2Dirs, l.V2Index, l.V3Keys, l.V3Revision, l.Seconds, r.Etcd)
	} else {
		fmt.Fprintf(w, "Rehearsal of %s (copy in %s%s)\n", r.DataDir, r.WorkDir, kept)
		fmt.Fprintf(w, "  copied %d files (%s) in %.1fs; served by etcd %s at v2 index %d, v3 revision %d\n",
			r.CopiedFiles, mib(r.CopiedBytes), r.CopySeconds, r.Etcd, r.V2Index, r.V3Revision)
	}
	s := r.Store
	fmt.Fprintf(w, "Store under %s:\n", r.GWPrefix)
	fmt.Fprintf(w, "  documents %d (%s), %d with a TTL, %d v2-era ledger entries; empty directories %d\n",
		s.Docs, mib(s.Bytes), s.TTLDocs, s.LedgerEntries, s.EmptyDirs)
	for _, d := range s.EmptyDirList {
		fmt.Fprintf(w, "    empty dir: %s\n", d)
	}
	fmt.Fprintf(w, "  published buckets %d%s\n", len(s.Published), list(s.Published, 10))
	fmt.Fprintf(w, "  v2 epoch keys %d\n", s.V2EpochKeys)
	if len(r.Applied) > 0 {
		fmt.Fprintf(w, "  applied migrations: %s\n", strings.Join(r.Applied, ", "))
	}
	if len(r.Plan) > 0 {
		fmt.Fprintf(w, "  the run would apply: %s\n", strings.Join(r.Plan, ", "))
	}
	fmt.Fprintln(w, "Steps (the real code, on the copy):")
	for _, st := range r.Steps {
		fmt.Fprintf(w, "  %-18s %7.2fs", st.Name, st.Seconds)
		if st.PerSec > 0 {
			fmt.Fprintf(w, "  %d items, %.0f/s", st.Items, st.PerSec)
		}
		if len(st.Phases) > 0 {
			fmt.Fprintf(w, "  (copy %.2fs, v2 all read after %.2fs of it; verify %.2fs)", st.Phases["copy"], st.Phases["read"], st.Phases["verify"])
		}
		if st.Note != "" {
			fmt.Fprintf(w, "  %s", st.Note)
		}
		if st.Error != "" {
			fmt.Fprintf(w, "  FAILED: %s", st.Error)
		}
		fmt.Fprintln(w)
	}
	if r.Verified {
		fmt.Fprintf(w, "  the move verified: v3 holds every v2 document's bytes, checksum %s\n", r.Checksum)
	}
	d := r.Downtime
	if d.Seconds > 0 {
		fmt.Fprintf(w, "Predicted Gateway downtime: %s (%s)\n", secs(d.Seconds), d.Basis)
		fmt.Fprintf(w, "  %s\n", hardware)
	}
	if r.Kept {
		fmt.Fprintf(w, "The copy, as the rehearsal left it (moved), is in %s/data: etcd --data-dir %s/data --enable-v2 serves it.\n", r.WorkDir, r.WorkDir)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
	if r.OK {
		fmt.Fprintln(w, "The real run would succeed: no problem found.")
		return
	}
	fmt.Fprintf(w, "The real run would FAIL: %d problems\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

func list(s []string, n int) string {
	if len(s) == 0 {
		return ""
	}
	more := ""
	if len(s) > n {
		s, more = s[:n], fmt.Sprintf(", … (%d more)", len(s)-n)
	}
	return ": " + strings.Join(s, ", ") + more
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func secs(s float64) string {
	if s < 1 {
		return "under 1 s"
	}
	if s < 120 {
		return fmt.Sprintf("about %.0f s", s)
	}
	return fmt.Sprintf("about %.0f min", s/60)
}
