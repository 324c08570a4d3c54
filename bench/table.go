package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Text writes the result as the table people read.
func (res *Result) Text(w io.Writer) {
	fmt.Fprintf(w, "rokup bench: %d Gateway documents (%d B values), %d objects on %d nodes\n", res.Docs, res.ValueSize, res.Objects, res.Nodes)
	fmt.Fprintf(w, "against %s; fsync %s\n", res.Etcd, res.Fsync)
	fmt.Fprintf(w, "%d cores (GOMAXPROCS %d), load average %.1f before and %.1f after\n\n", res.Cores, res.GoMaxProcs, res.LoadAvg[0], res.LoadAvg[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\titems\tseconds\titems/s\t× naive\t% of ceiling\tpeak MiB\tgrowth MiB\theap MiB\tCPU s\tbusy\tsteal s\t")
	var notes []string
	for _, p := range res.Paths {
		name := p.Name
		if p.Sampled {
			name += " *"
			notes = append(notes, fmt.Sprintf("* %s: %d of %d measured, time extrapolated", p.Name, p.Sample, p.SampleOf))
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t\n", name, p.Items, p.Seconds, p.PerS,
			times(p.VsNaive), percent(p.VsCeiling), p.PeakRSSMiB, p.RSSGrowthMiB, p.HeapPeakMiB, cpuSeconds(p.CPU), busy(p.CPU), steal(p.CPU))
		if p.Setting != "" || p.Note != "" {
			n := "  " + p.Name + ": "
			if p.Setting != "" {
				n += p.Setting + "; "
			}
			notes = append(notes, n+p.Note)
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintln(w, strings.TrimRight(n, " "))
	}
	fmt.Fprintf(w, "  memory: peak and growth of RSS, peak Go heap, per path; seeding took %.0f s, peak %.0f MiB; process peak %.0f MiB\n", res.SeedSecs, res.SeedRSSMiB, res.PeakRSSMiB)
	fmt.Fprintln(w, "  CPU: seconds of processor time, rokup's (user + system) + the etcd member's where it is the bench's child; busy: their share of every core over the path's time (of its sample, for *); steal: time the hypervisor took from the cores meanwhile (a path with much ran on a slower machine)")
	if res.SeedNote != "" {
		fmt.Fprintln(w, "  seed: "+res.SeedNote)
	}
	for _, c := range res.Checks {
		fmt.Fprintln(w, "  check: "+c)
	}
}

// cpuSeconds is rokup's CPU, then etcd's after a "+" where measured.
func cpuSeconds(c *CPU) string {
	if c == nil {
		return "-"
	}
	s := fmt.Sprintf("%.1f", c.User+c.Sys)
	if c.Etcd != nil {
		s += fmt.Sprintf("+%.1f", *c.Etcd)
	}
	return s
}

func busy(c *CPU) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", c.Busy*100)
}

func steal(c *CPU) string {
	if c == nil || c.Steal == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *c.Steal)
}

func times(x *float64) string {
	if x == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f×", *x)
}

func percent(x *float64) string {
	if x == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", *x*100)
}
