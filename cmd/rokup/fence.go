package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/fencing"
)

// newFenceCmd is the operator's hand on the GC fence
// (docs/design.md#gc-fence): while the fence key exists no rok-gc deletes
// anything, anywhere.
func newFenceCmd(f *cli.Flags) *cobra.Command {
	var fenceKey string
	cmd := &cobra.Command{
		Use:   "fence",
		Short: "Inspect or move the GC fence",
		Long: `Inspect or move the GC fence (` + fencing.DefaultFenceKey + `).

While the fence is set, no rok-gc deletes anything: a GC refuses to start
(exit 3, naming the holder), and a running GC stops before its next deletion.
The upgrade sets the fence as "upgrade/<run id>" and lifts it when it is done;
an aborted upgrade keeps it until an operator releases it.`,
	}
	cmd.PersistentFlags().StringVar(&fenceKey, "fence-key", fencing.DefaultFenceKey, "key of the GC fence")
	fence := func(cmd *cobra.Command) (*fencing.Fence, func(), error) {
		c, err := f.V3(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return fencing.NewFence(c, fencing.WithFenceKey(fenceKey)), func() { c.Close() }, nil
	}
	cmd.AddCommand(newFenceStatusCmd(f, fence), newFenceSetCmd(f, fence), newFenceReleaseCmd(f, fence))
	for _, c := range append(cmd.Commands(), cmd) {
		cli.Uses(c, cli.ConnFlags, cli.Flag(cli.OutputFlag))
	}
	return cmd
}

type fenceOpener func(*cobra.Command) (*fencing.Fence, func(), error)

// fenceReport is the -o json shape of every fence subcommand.
type fenceReport struct {
	Key      string     `json:"key"`
	Fenced   bool       `json:"fenced"`
	Holder   string     `json:"holder,omitempty"`
	Reason   string     `json:"reason,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
	Revision int64      `json:"revision,omitempty"`
	Changed  bool       `json:"changed"`
}

func reportOf(key string, h *fencing.Holding, changed bool) fenceReport {
	r := fenceReport{Key: key, Changed: changed}
	if h != nil {
		since := h.Since
		r.Fenced, r.Holder, r.Reason, r.Since, r.Revision = true, h.Holder, h.Reason, &since, h.Rev
	}
	return r
}

func printFence(w io.Writer, r fenceReport) {
	if !r.Fenced {
		fmt.Fprintf(w, "GC is not fenced (%s is absent)\n", r.Key)
		return
	}
	fmt.Fprintf(w, "GC is fenced: holder %q, since %s, revision %d\n", r.Holder, r.Since.UTC().Format(time.RFC3339), r.Revision)
	if r.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", r.Reason)
	}
}

func defaultHolder() string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = "operator"
	}
	return user + "@" + host
}

func newFenceStatusCmd(f *cli.Flags, open fenceOpener) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show whether GC is fenced, by whom and why (exit 0 either way)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fence, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			h, err := fence.Get(cmd.Context())
			if err != nil {
				return err
			}
			r := reportOf(fence.Key(), h, false)
			return f.Report(cmd.OutOrStdout(), r, func(w io.Writer) { printFence(w, r) })
		},
	}
}

func newFenceSetCmd(f *cli.Flags, open fenceOpener) *cobra.Command {
	var holder, reason string
	cmd := &cobra.Command{
		Use:   "set --reason TEXT [--holder NAME]",
		Short: "Fence GC off: no rok-gc deletes anything until the fence is released",
		Long: `Set the GC fence. Setting it again as the same holder changes nothing;
a fence held by another holder is an error naming that holder (exit 1).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reason == "" {
				return cli.Usagef("fence set needs --reason: say why GC is stopped")
			}
			fence, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			before, err := fence.Get(cmd.Context())
			if err != nil {
				return err
			}
			h, err := fence.Set(cmd.Context(), holder, reason)
			if err != nil {
				return err
			}
			r := reportOf(fence.Key(), &h, before == nil)
			return f.Report(cmd.OutOrStdout(), r, func(w io.Writer) {
				if !r.Changed {
					fmt.Fprintln(w, "already set by this holder; unchanged")
				}
				printFence(w, r)
			})
		},
	}
	cmd.Flags().StringVar(&holder, "holder", defaultHolder(), "who holds the fence")
	cmd.Flags().StringVar(&reason, "reason", "", "why GC is fenced (required)")
	return cmd
}

func newFenceReleaseCmd(f *cli.Flags, open fenceOpener) *cobra.Command {
	var holder string
	var force bool
	cmd := &cobra.Command{
		Use:   "release [--holder NAME] [--force]",
		Short: "Lift the GC fence (only its holder, unless --force)",
		Long: `Release the GC fence. Only its holder may release it: a fence held by
another holder is refused, naming that holder (exit 1), unless --force.
Releasing a fence that is not set succeeds and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fence, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			before, err := fence.Get(cmd.Context())
			if err != nil {
				return err
			}
			var ops []fencing.Op
			if force {
				ops = append(ops, fencing.Force())
			}
			released, err := fence.Release(cmd.Context(), holder, ops...)
			if err != nil {
				return err
			}
			r := reportOf(fence.Key(), nil, released)
			return f.Report(cmd.OutOrStdout(), r, func(w io.Writer) {
				switch {
				case released && before != nil:
					fmt.Fprintf(w, "released the fence held by %q\n", before.Holder)
				default:
					fmt.Fprintln(w, "the fence was not set; nothing to release")
				}
			})
		},
	}
	cmd.Flags().StringVar(&holder, "holder", defaultHolder(), "the holder releasing the fence")
	cmd.Flags().BoolVar(&force, "force", false, "release a fence held by another holder")
	cmd.Example = `  rokup fence release --holder upgrade/upgrade-0.14   # a run's fence, after giving the run up`
	return cmd
}
