package gc

import (
	"fmt"
	"io"
	"strings"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

// maxListed bounds the paths a report lists (dry-run candidates, bad
// entries, errors); the counts are always complete.
const maxListed = 1000

// Report is what a run did. Its JSON is what `rok-gc -o json` prints.
type Report struct {
	Node   string `json:"node"`
	CA     bool   `json:"ca"`
	DryRun bool   `json:"dry_run"`
	// Epoch is G: objects stamped before it were collectible.
	Epoch uint64 `json:"epoch"`

	Roots        int64 `json:"roots"`         // maps-uuid, or Gateway versions naming a map
	MissingRoots int64 `json:"missing_roots"` // versions naming a map not on storage
	Scanned      int64 `json:"scanned"`       // valid objects found on storage
	Reachable    int64 `json:"reachable"`
	NoEpoch      int64 `json:"no_epoch"`   // unreachable, without an epoch: stamped with G, kept
	TooRecent    int64 `json:"too_recent"` // unreachable, stamped or touched at or after G: kept
	Deleted      int64 `json:"deleted"`    // epoch key deleted (files removed or already gone)
	WouldDelete  int64 `json:"would_delete,omitempty"`
	BytesFreed   int64 `json:"bytes_freed"`
	Vanished     int64 `json:"vanished"` // collected objects whose file was already gone
	Bad          int64 `json:"bad"`      // bad entries on storage, bad epoch keys, bad version docs
	Errors       int64 `json:"errors"`

	// RootsIncomplete says why nothing of a scope was collected: a root
	// could not be read, so what it reaches is unknown.
	RootsIncomplete []string `json:"roots_incomplete,omitempty"`
	Notes           []string `json:"notes,omitempty"`
	// Listed are the dry run's candidates (paths), then BadList and
	// ErrorList the first bad entries and errors, with their reasons.
	Listed    []string `json:"would_delete_paths,omitempty"`
	BadList   []string `json:"bad_entries,omitempty"`
	ErrorList []string `json:"error_list,omitempty"`
	// Recovered is what the run put back at its start, of the files an
	// earlier GC set aside and never finished with (it was killed).
	Recovered Recovered `json:"recovered"`
	// PeakRSSMiB is the process's peak resident memory, set by rok-gc.
	PeakRSSMiB float64 `json:"peak_rss_mib,omitempty"`
	// Seconds is where the run's time went.
	Seconds Seconds `json:"seconds"`
	// Stopped is set when the run stopped early (fenced, instance lost).
	Stopped string `json:"stopped,omitempty"`
}

// Seconds is where a run's time went: the mark, then the sweep (scan,
// epoch reads, deletions), and within the sweep the time the writers spent
// moving files aside and removing them, summed over the writers running at
// once (so it can exceed the sweep's).
type Seconds struct {
	Mark  float64 `json:"mark"`
	Sweep float64 `json:"sweep"`
	Files float64 `json:"files"`
}

// Text writes the report for people.
func (r *Report) Text(w io.Writer) {
	what := "node " + r.Node
	if r.CA {
		what = "CA storage"
	}
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing deleted, nothing written)"
	}
	fmt.Fprintf(w, "rok-gc %s, epoch G=%d%s\n", what, r.Epoch, mode)
	fmt.Fprintf(w, "  roots          %d (missing on storage: %d)\n", r.Roots, r.MissingRoots)
	fmt.Fprintf(w, "  scanned        %d\n", r.Scanned)
	fmt.Fprintf(w, "  reachable      %d\n", r.Reachable)
	fmt.Fprintf(w, "  no epoch       %d (stamped with %d, kept)\n", r.NoEpoch, r.Epoch)
	fmt.Fprintf(w, "  too recent     %d (kept)\n", r.TooRecent)
	if r.DryRun {
		fmt.Fprintf(w, "  would delete   %d\n", r.WouldDelete)
	} else {
		fmt.Fprintf(w, "  deleted        %d (%s freed; %d files already gone)\n", r.Deleted, humanBytes(r.BytesFreed), r.Vanished)
	}
	if rc := r.Recovered; rc.Restored+rc.Superseded > 0 || len(rc.Errors) > 0 {
		fmt.Fprintf(w, "  recovered      %d files put back (%d superseded) that an interrupted GC had set aside\n", rc.Restored, rc.Superseded)
		for _, e := range rc.Errors {
			fmt.Fprintf(w, "  recovery error: %s\n", e)
		}
	}
	fmt.Fprintf(w, "  bad entries    %d\n", r.Bad)
	fmt.Fprintf(w, "  errors         %d\n", r.Errors)
	fmt.Fprintf(w, "  time           mark %.1fs, sweep %.1fs (of which %.1fs moving and removing files, summed over the writers)\n", r.Seconds.Mark, r.Seconds.Sweep, r.Seconds.Files)
	for _, s := range r.RootsIncomplete {
		fmt.Fprintf(w, "  NOT COLLECTED: %s\n", s)
	}
	for _, s := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", s)
	}
	if r.Stopped != "" {
		fmt.Fprintf(w, "  STOPPED: %s\n", r.Stopped)
	}
	for _, p := range r.Listed {
		fmt.Fprintf(w, "would delete %s\n", p)
	}
	for _, p := range r.BadList {
		fmt.Fprintf(w, "bad: %s\n", p)
	}
	for _, p := range r.ErrorList {
		fmt.Fprintf(w, "error: %s\n", p)
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func listAppend(l []string, s string) []string {
	if len(l) >= maxListed {
		return l
	}
	return append(l, strings.TrimSpace(s))
}

func (g *run) count(f func(*Report)) {
	g.mu.Lock()
	f(g.r)
	g.mu.Unlock()
}

func (g *run) bad(e composer.Entry) {
	s := fmt.Sprintf("%s: %s", e.Path, e.Bad)
	if e.Err != nil {
		s += fmt.Sprintf(" (%v)", e.Err)
	}
	g.badf("%s", s)
}

func (g *run) badf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	g.count(func(r *Report) {
		r.Bad++
		r.BadList = listAppend(r.BadList, s)
	})
}

func (g *run) note(s string) {
	g.count(func(r *Report) { r.Notes = append(r.Notes, s) })
}

func (g *run) rootsIncomplete(scope libmap.Scope, why string) {
	if g.incomplete[scope] != "" {
		return
	}
	g.incomplete[scope] = why
	g.count(func(r *Report) {
		r.RootsIncomplete = append(r.RootsIncomplete, fmt.Sprintf("%s kept: %s", scope, why))
	})
}

func (g *run) progress(phase string) {
	if g.cfg.OnProgress == nil {
		return
	}
	g.mu.Lock()
	p := Progress{Phase: phase, Scanned: g.r.Scanned, Deleted: g.r.Deleted, Errors: g.r.Errors}
	g.mu.Unlock()
	g.cfg.OnProgress(p)
}
