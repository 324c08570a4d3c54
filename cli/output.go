package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// PrintJSON writes v as indented JSON.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Report prints a report: v as JSON with -o json, otherwise text(w).
func (f *Flags) Report(w io.Writer, v any, text func(io.Writer)) error {
	if f.JSON() {
		return PrintJSON(w, v)
	}
	text(w)
	return nil
}

// Progress shows the progress of long work on stderr: a bar with rate and
// ETA on a terminal, a plain line every Interval otherwise (logs, CI), and
// nothing when quiet (JSON output wants a clean stdout, but stderr is fine;
// quiet is for callers that report elsewhere).
type Progress struct {
	label    string
	bar      *progressbar.ProgressBar
	w        io.Writer
	start    time.Time
	last     time.Time
	interval time.Duration
	done     int64
	total    int64
	quiet    bool
}

// ProgressInterval is how often plain progress lines are printed.
var ProgressInterval = 2 * time.Second

// NewProgress starts progress for label; total may be 0 (unknown) and grow.
func NewProgress(label string, total int64) *Progress {
	return newProgress(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())), label, total)
}

// NewQuietProgress returns progress that shows nothing.
func NewQuietProgress() *Progress { return &Progress{quiet: true, start: time.Now()} }

func newProgress(w io.Writer, tty bool, label string, total int64) *Progress {
	p := &Progress{label: label, w: w, start: time.Now(), interval: ProgressInterval, total: total}
	p.last = p.start
	if tty {
		max := total
		if max <= 0 {
			max = -1
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("items"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

// Since sets when the work began, for progress created after it began
// (a rate reckoned from the first report would be absurd).
func (p *Progress) Since(t time.Time) *Progress {
	p.start, p.last = t, t
	return p
}

// Set records done of total items (total 0 keeps the last known total).
// Not safe for concurrent use; callers serialise.
func (p *Progress) Set(done, total int64) {
	if p.quiet {
		return
	}
	if total > 0 && total != p.total {
		p.total = total
		if p.bar != nil {
			p.bar.ChangeMax64(total)
		}
	}
	p.done = done
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.interval {
		p.last = now
		p.line(now)
	}
}

// Add records n more items done.
func (p *Progress) Add(n int64) { p.Set(p.done+n, 0) }

// Finish closes the bar or prints the last line.
func (p *Progress) Finish() {
	if p.quiet {
		return
	}
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	p.line(time.Now())
}

func (p *Progress) line(now time.Time) {
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	if p.total > 0 {
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
		}
		fmt.Fprintf(p.w, "%s: %d/%d (%.1f%%), %.0f/s, eta %s\n", p.label, p.done, p.total, 100*float64(p.done)/float64(p.total), rate, eta)
		return
	}
	fmt.Fprintf(p.w, "%s: %d, %.0f/s\n", p.label, p.done, rate)
}
