package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

// Environment defaults of the storage roots, for the guide's commands run
// verbatim on a node whose environment names them (as it names the etcd
// endpoint with ROK_COMPOSER_ETCD_ENDPOINT).
const (
	envNodelocalRoot = "ROK_COMPOSER_NODELOCAL_ROOT"
	envLocalRoot     = "ROK_COMPOSER_LOCAL_ROOT"
)

// updateReport is the -o json output.
type updateReport struct {
	Node       string            `json:"node"`
	DryRun     bool              `json:"dry_run,omitempty"`
	PeakRSSMiB float64           `json:"peak_rss_mib"`
	Epoch      uint64            `json:"epoch"`
	Scopes     []composer.Report `json:"scopes"`
	Unreadable int64             `json:"unreadable"`
	OK         bool              `json:"ok"`
	Error      string            `json:"error,omitempty"`
}

func newEpochUpdateCmd(f *cli.Flags) *cobra.Command {
	var all, dryRun, checkRefs bool
	cmd := &cobra.Command{
		Use:   "epoch-update [--all] SCOPE...",
		Short: "Stamp every map/chock of the given scopes with the current epoch",
		Long: `Stamp every valid map and chock found on storage with the current epoch in
the etcd v3 store (/epochs/<scope>/<id>), creating /libmap/epoch as 1 if absent.

Scopes: maps-uuid and chocks-idx live under --nodelocal-root (default
$` + envNodelocalRoot + `) and their ids are qualified by --node; maps-ca and
chocks-ca live under --local-root (default $` + envLocalRoot + `). --all stamps
the four (local mode).

Entries that are not valid objects (temporary files, bad names, hashes in the
wrong folder, symbolic links, folders where files belong, unreadable files) are
never stamped; they are counted and reported. A map is stamped as a chock is,
on its name and a readability check, without reading its content: that would
cost the update about 15 % of its time. --check-refs reads every map as well:
malformed maps are then skipped too, and maps that name a chock missing from
storage are reported (and still stamped). Re-running is harmless, and quick:
objects already holding the epoch are read, not written.

--dry-run scans and classifies the same entries and writes nothing (neither
etcd, which it does not contact, nor the root's node marker): the counts by
scope, the bad entries with their reasons and the scan's rate, to predict each
node's update before the window. It always reads the maps, as --check-refs
does: the preflight is where malformed maps and missing chocks show.

Exit status: 0 done; 1 failure, or some entries were unreadable (the rest is
stamped); 2 bad usage.`,
		Example: `  rok-composer-tool epoch-update maps-uuid chocks-idx      # on each node
  rok-composer-tool epoch-update maps-ca chocks-ca         # on the master
  rok-composer-tool epoch-update --all                     # local mode
  rok-composer-tool epoch-update --dry-run --all           # count and classify; write nothing`,
		RunE: func(cmd *cobra.Command, args []string) error {
			scopes, err := requestedScopes(all, args)
			if err != nil {
				return err
			}
			l := composer.Layout{Nodelocal: orEnv(f.NodelocalRoot, envNodelocalRoot), Local: orEnv(f.LocalRoot, envLocalRoot)}
			for _, sc := range scopes {
				if l.Root(sc) != "" {
					continue
				}
				flag, env := "--nodelocal-root", envNodelocalRoot
				if !sc.Nodelocal() {
					flag, env = "--local-root", envLocalRoot
				}
				return cli.Usagef("scope %s needs %s (or $%s)", sc, flag, env)
			}
			for _, sc := range scopes {
				if sc.Nodelocal() && f.Node == "" {
					return cli.Usagef("scope %s needs --node (the host name is unknown)", sc)
				}
				if err := composer.CheckRoot(l.Root(sc)); err != nil {
					return fmt.Errorf("%s: %w", sc, err)
				}
				if sc.Nodelocal() {
					// The root remembers its node: stamping it under another
					// name would give its objects epochs GC never reads.
					claim := composer.ClaimRoot
					if dryRun {
						claim = composer.CheckOwner // writes nothing
					}
					if err := claim(l.Nodelocal, f.Node); err != nil {
						return &cli.UsageError{Err: err}
					}
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return epochUpdate(ctx, cmd.OutOrStdout(), f, l, scopes, dryRun, checkRefs)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "stamp the four scopes (local mode)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "scan and classify only: write nothing, not even to etcd")
	cmd.Flags().BoolVar(&checkRefs, "check-refs", false, "read every map: skip malformed ones, report chocks they name that are missing")
	cli.Uses(cmd, cli.ConnFlags, cli.StorageFlags, cli.Flag(cli.OutputFlag))
	return cmd
}

func requestedScopes(all bool, args []string) ([]libmap.Scope, error) {
	switch {
	case all && len(args) > 0:
		return nil, cli.Usagef("give scopes or --all, not both")
	case all:
		return libmap.Scopes(), nil
	case len(args) == 0:
		return nil, cli.Usagef("no scope given (valid scopes: %s; or --all)", libmap.ValidScopes())
	}
	scopes, err := libmap.ParseScopes(args)
	if err != nil {
		return nil, cli.Usagef("%v", err)
	}
	return scopes, nil
}

func orEnv(v, env string) string {
	if v != "" {
		return v
	}
	return os.Getenv(env)
}

func epochUpdate(ctx context.Context, out io.Writer, f *cli.Flags, l composer.Layout, scopes []libmap.Scope, dryRun, checkRefs bool) error {
	var cache *libmap.Cache
	if !dryRun {
		c, err := f.V3(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		cache = libmap.New(c)
	}
	rep := updateReport{Node: f.Node, DryRun: dryRun}
	// The scopes are stamped at once (composer.UpdateScopes): one line of
	// progress counts them together.
	p := cli.NewProgress("epoch-update "+libmap.JoinScopes(scopes, " "), 0)
	reps, runErr := composer.UpdateScopes(ctx, cache, l, scopes, composer.UpdateConfig{
		Node:       f.Node,
		DryRun:     dryRun,
		CheckRefs:  checkRefs,
		OnProgress: func(done, total int64) { p.Set(done, total) },
	})
	p.Finish()
	for _, r := range reps {
		rep.Scopes = append(rep.Scopes, r)
		rep.Epoch = max(rep.Epoch, r.Epoch)
		rep.Unreadable += r.Unreadable
	}
	if runErr == nil && rep.Unreadable > 0 && !dryRun {
		runErr = &cli.ExitError{Code: cli.ExitFailed, Err: fmt.Errorf("%d unreadable entries were not stamped (listed above); the rest is stamped", rep.Unreadable)}
	}
	if runErr != nil {
		rep.Error = runErr.Error()
		if ctx.Err() == nil && !isExit(runErr) {
			runErr = fmt.Errorf("%w (re-running the same command completes the update)", runErr)
		}
	}
	rep.OK = runErr == nil
	rep.PeakRSSMiB = cli.PeakRSSMiB()
	if err := f.Report(out, rep, func(w io.Writer) { printReport(w, rep) }); err != nil {
		return err
	}
	return runErr
}

func isExit(err error) bool {
	_, ok := err.(*cli.ExitError)
	return ok
}

func printReport(w io.Writer, rep updateReport) {
	for _, r := range rep.Scopes {
		where := r.Dir
		if r.Node != "" {
			where = r.Node + ", " + r.Dir
		}
		if r.DryRun {
			fmt.Fprintf(w, "%s (%s): dry run: %d objects would be stamped, %d skipped; scanned in %.1fs, %.0f objects/s\n",
				r.Scope, where, r.Objects, r.Skipped, r.Seconds, r.PerSecond)
		} else {
			fmt.Fprintf(w, "%s (%s): epoch %d: %d stamped, %d already stamped, %d skipped; %.1fs, %.0f objects/s\n",
				r.Scope, where, r.Epoch, r.Stamped, r.AlreadyStamped, r.Skipped, r.Seconds, r.PerSecond)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", r.Note)
		}
		if r.Skipped > 0 {
			var parts []string
			reasons := make([]string, 0, len(r.SkippedBy))
			for reason := range r.SkippedBy {
				reasons = append(reasons, string(reason))
			}
			sort.Strings(reasons)
			for _, reason := range reasons {
				parts = append(parts, fmt.Sprintf("%d %s", r.SkippedBy[composer.Reason(reason)], reason))
			}
			fmt.Fprintf(w, "  skipped: %s\n", strings.Join(parts, ", "))
			for _, b := range r.BadSamples {
				if b.Error != "" {
					fmt.Fprintf(w, "    %s: %s (%s)\n", b.Path, b.Reason, b.Error)
				} else {
					fmt.Fprintf(w, "    %s: %s\n", b.Path, b.Reason)
				}
			}
			if int64(len(r.BadSamples)) < r.Skipped {
				fmt.Fprintf(w, "    … and %d more (-o json lists the first %d)\n", r.Skipped-int64(len(r.BadSamples)), composer.MaxSamples)
			}
		}
		if r.MissingChocks > 0 {
			fmt.Fprintf(w, "  maps naming missing chocks: %d references\n", r.MissingChocks)
			for _, m := range r.MissingSamples {
				fmt.Fprintf(w, "    %s\n", m)
			}
		}
	}
	if !rep.OK && rep.Error != "" {
		// The counts above are what was stamped before it stopped.
		fmt.Fprintf(w, "not finished: %s\n", rep.Error)
	}
}
