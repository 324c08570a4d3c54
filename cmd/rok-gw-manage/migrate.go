package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/gateway"
)

type migrateFlags struct {
	plan, fake, check, dryRun  bool
	force, overwrite           bool
	republish                  bool
	maxOps, maxBytes, inFlight int
	spoolDir                   string
	levelReads                 bool
}

// migrateReport is migrate's -o json output.
type migrateReport struct {
	Plan      []gateway.Step         `json:"plan"`
	Steps     []stepReport           `json:"steps,omitempty"`
	Republish *gateway.BucketsReport `json:"republish,omitempty"`
	Error     string                 `json:"error,omitempty"`
	// Interrupted is set when the run was stopped (SIGINT, SIGTERM): the
	// running step's report counts what it wrote before, unrecorded.
	Interrupted bool `json:"interrupted,omitempty"`
}

type stepReport struct {
	gateway.StepResult
	Seconds float64 `json:"seconds"`
	Report  any     `json:"report,omitempty"`
}

func newMigrateCmd(f *cli.Flags) *cobra.Command {
	var mf migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate [app [target]]",
		Short: "Apply (or revert to a target) the Gateway store's migrations",
		Long: `Apply every unapplied migration, or bring one app to a target migration:
an applied target reverts what came after it ("migrate gw 0001_initial" undoes
the move to v3), "zero" reverts the app entirely.

The move (gw.0002_v3_store) reads v2 once and copies every document under
--gw-prefix to v3 as it reads it, byte for byte, TTLs as leases, in
transactions bounded by --max-txn-ops and --max-request-bytes with --in-flight
of them at once; it is recorded only after v3 is read back and matches v2's
count and checksum. Interrupt it at any point (Ctrl-C stops after the current
batch), or let it fail on a document too large for one transaction, and run
it again (or revert it).`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrate(cmd, f, &mf, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&mf.plan, "plan", false, "print the plan and write nothing")
	fl.BoolVar(&mf.fake, "fake", false, "record (or unrecord) the plan's migrations without running them")
	fl.BoolVar(&mf.check, "check", false, "change nothing; exit 1 while any migration is unapplied")
	fl.BoolVar(&mf.dryRun, "dry-run", false, "print the plan with counts and write nothing")
	fl.BoolVar(&mf.force, "force", false, "move even while a Gateway liveness key (_alive) exists")
	fl.BoolVar(&mf.overwrite, "overwrite", false, "replace v3 keys that hold other bytes, and delete v3 keys under the prefix that v2 does not hold, instead of failing on them")
	fl.BoolVar(&mf.republish, "republish", false, "re-publish the published buckets once migrated")
	fl.IntVar(&mf.maxOps, "max-txn-ops", batch.DefaultMaxOps, "operations per transaction (etcd's --max-txn-ops)")
	fl.IntVar(&mf.maxBytes, "max-request-bytes", batch.DefaultMaxBytes, "payload bytes per transaction (keep under etcd's --max-request-bytes)")
	fl.IntVar(&mf.inFlight, "in-flight", gateway.DefaultInFlight, "transactions in flight at once (the copy keeps twice as many small ones in flight)")
	fl.StringVar(&mf.spoolDir, "spool-dir", "", "ignored: the move reads v2 once and writes as it reads, keeping nothing on disk")
	_ = fl.MarkDeprecated("spool-dir", "the move reads v2 once and writes as it reads; it keeps nothing on disk")
	fl.BoolVar(&mf.levelReads, "level-reads", false, "read v2 one directory level per request, never a whole subtree (gentler on an etcd short of memory, much slower on small directories)")
	cmd.Example = `  rok-gw-manage migrate                   # apply every unapplied migration (the upgrade guide's command)
  rok-gw-manage migrate --plan            # what would run; writes nothing
  rok-gw-manage migrate --check           # exit 1 while anything is unapplied
  rok-gw-manage migrate gw 0001_initial   # revert the v3 store move
  rok-gw-manage migrate --republish       # then re-publish the published buckets`
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag, cli.GWPrefixFlag))
	return cmd
}

func runMigrate(cmd *cobra.Command, f *cli.Flags, mf *migrateFlags, args []string) error {
	if mf.maxOps < 3 || mf.maxBytes < 1024 || mf.inFlight < 1 {
		return cli.Usagef("--max-txn-ops must be at least 3, --max-request-bytes at least 1024, --in-flight at least 1")
	}
	if mf.fake && mf.dryRun {
		return cli.Usagef("--fake and --dry-run do not go together")
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c3, kapi, err := stores(ctx, f)
	if err != nil {
		return err
	}
	defer c3.Close()
	ex, err := executor(c3, kapi, f, gateway.MoveOptions{
		MaxTxnOps: mf.maxOps, MaxRequestBytes: mf.maxBytes, InFlight: mf.inFlight,
		Force: mf.force, Overwrite: mf.overwrite,
		ReadBudget: readBudget(mf.levelReads),
	})
	if err != nil {
		return err
	}
	applied, err := ex.Applied(ctx)
	if err != nil {
		return err
	}
	var app, target string
	if len(args) > 0 {
		app = args[0]
	}
	if len(args) > 1 {
		target = args[1]
	}
	plan, err := ex.Plan(app, target, applied)
	if errors.Is(err, gateway.ErrUnknownApp) || errors.Is(err, gateway.ErrUnknownMigration) {
		return &cli.UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	rep := migrateReport{Plan: plan}
	if rep.Plan == nil {
		rep.Plan = []gateway.Step{}
	}

	if mf.check || mf.plan {
		if err := f.Report(out, rep, func(w io.Writer) { printPlan(w, plan) }); err != nil {
			return err
		}
		if mf.check && len(plan) > 0 {
			return &cli.ExitError{Code: cli.ExitFailed}
		}
		return nil
	}

	var prog *cli.Progress
	label := ""
	ex.OnProgress = func(p gateway.Progress) {
		l := p.Step.String() + " " + p.Phase
		if l != label {
			if prog != nil {
				prog.Finish()
			}
			label, prog = l, cli.NewProgress(l, p.Total)
		}
		prog.Set(p.Done, p.Total)
	}
	results, runErr := ex.Run(ctx, plan, gateway.RunOptions{Fake: mf.fake, DryRun: mf.dryRun})
	if prog != nil {
		prog.Finish()
	}
	for _, r := range results {
		rep.Steps = append(rep.Steps, stepReport{StepResult: r, Seconds: r.Elapsed.Seconds(), Report: r.Result.Report})
	}
	if runErr == nil && mf.republish && !mf.dryRun {
		br, err := gateway.Republish(ctx, c3, nil, gateway.BucketsOptions{Prefix: f.GWPrefix})
		rep.Republish = &br
		runErr = err
	}
	if runErr != nil {
		rep.Error = runErr.Error()
		if errors.Is(runErr, context.Canceled) {
			rep.Interrupted = true
			runErr = fmt.Errorf("interrupted; nothing of the running step was recorded, run migrate again to finish: %w", runErr)
		}
	}
	if err := f.Report(out, rep, func(w io.Writer) { printRun(w, rep, mf) }); err != nil {
		return err
	}
	return runErr
}

func printPlan(w io.Writer, plan []gateway.Step) {
	if len(plan) == 0 {
		fmt.Fprintln(w, "No migrations to apply.")
		return
	}
	fmt.Fprintln(w, "Planned operations:")
	for _, s := range plan {
		fmt.Fprintf(w, "  %s\n", s)
	}
}

func printRun(w io.Writer, rep migrateReport, mf *migrateFlags) {
	if len(rep.Plan) == 0 {
		fmt.Fprintln(w, "No migrations to apply.")
	}
	for i, s := range rep.Steps {
		status := "OK"
		switch {
		case rep.Error != "" && i == len(rep.Steps)-1:
			// The step the run stopped in: never OK, and not recorded.
			status = "FAILED (not recorded)"
			if rep.Interrupted {
				status = "INTERRUPTED (not recorded)"
			}
		case mf.dryRun:
			status = "(dry run)"
		case s.Fake:
			status = "FAKED"
		}
		verb := "Applying"
		if s.Backward {
			verb = "Unapplying"
		}
		fmt.Fprintf(w, "  %s %s... %s (%.1fs)\n", verb, s.Key, status, s.Seconds)
		switch r := s.Report.(type) {
		case gateway.MoveReport:
			printMove(w, r)
		case gateway.BucketsReport:
			printBuckets(w, r)
		case gateway.RevertReport:
			fmt.Fprintf(w, "    deleted %d keys the move had created; kept %d it created that were changed in v3 since, and %d created in v3 after it\n", r.Deleted, r.Kept, r.CreatedAfter)
			for _, k := range r.KeptKeys {
				fmt.Fprintf(w, "      kept: %s\n", k)
			}
			if r.LegacyMarkers > 0 {
				fmt.Fprintf(w, "    converted and deleted %d bookkeeping keys an older rokup left under the prefix\n", r.LegacyMarkers)
			}
		}
	}
	if r := rep.Republish; r != nil {
		fmt.Fprintf(w, "  Republished %d buckets at v3 revision %d: %s\n", len(r.Published), r.Revision, strings.Join(r.Published, ", "))
	}
}

func printMove(w io.Writer, r gateway.MoveReport) {
	if r.DryRun {
		fmt.Fprintf(w, "    would copy %d docs (%s), %d of them with a TTL; empty dirs %d\n", r.Docs, mib(r.Bytes), r.TTLDocs, r.EmptyDirs)
	} else {
		fmt.Fprintf(w, "    docs %d (%s), created %d, already in v3 %d, overwritten %d\n", r.Docs, mib(r.Bytes), r.Created, r.Identical, r.Overwritten)
		if r.V3KeysNow > 0 {
			fmt.Fprintf(w, "    stopped early: v3 holds %d keys under the prefix now (created counts the answered transactions; cut ones may have landed too)\n", r.V3KeysNow)
		}
		fmt.Fprintf(w, "    TTL docs %d on %d leases (%d expired meanwhile), empty dirs %d, conflicts %d\n", r.TTLDocs, r.Leases, r.Expired, r.EmptyDirs, r.Conflicts)
	}
	for _, k := range r.ConflictKeys {
		fmt.Fprintf(w, "      conflict: %s\n", k)
	}
	for _, c := range r.V2Changes {
		fmt.Fprintf(w, "      v2 changed during the move: %s\n", c)
	}
	for _, d := range r.EmptyDirList {
		fmt.Fprintf(w, "      empty dir: %s\n", d)
	}
	if len(r.Alive) > 0 {
		fmt.Fprintf(w, "    Gateway liveness keys: %s\n", strings.Join(r.Alive, ", "))
	}
	if r.LegacyMarkers > 0 {
		fmt.Fprintf(w, "    converted and deleted %d bookkeeping keys an older rokup left under the prefix\n", r.LegacyMarkers)
	}
	if r.Checksum != "" {
		fmt.Fprintf(w, "    verified: v3 matches v2, checksum %s\n", r.Checksum)
	}
	if !r.DryRun {
		fmt.Fprintf(w, "    elapsed %.2fs (copy %.2fs, v2 read whole after %.2fs of it; verify %.2fs), %.0f docs/s, %d transactions\n",
			r.Seconds, r.PhaseSeconds["copy"], r.PhaseSeconds["read"], r.PhaseSeconds["verify"], r.DocsPerSec, r.Txns)
		check := "v2 walked again"
		switch {
		case r.WatchVerify:
			check = "v2 unchanged, v3 watched during the copy"
		case r.FastVerify:
			check = "v2 unchanged, v3 read back by ranges"
		}
		fmt.Fprintf(w, "    v2 reads %d (%d whole subtrees, %d over the budget); verification: %s\n",
			r.V2Reads.Reads, r.V2Reads.Whole, r.V2Reads.Dropped, check)
	}
}

func printBuckets(w io.Writer, r gateway.BucketsReport) {
	fmt.Fprintf(w, "    %s\n", r)
	for _, b := range r.Published {
		fmt.Fprintf(w, "      published: %s\n", b)
	}
	for _, b := range r.Invalid {
		fmt.Fprintf(w, "      not valid JSON (untouched): %s\n", b)
	}
}

func readBudget(levelReads bool) int64 {
	if levelReads {
		return -1
	}
	return 0
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
