package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/term"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/upgrade"
)

func newStartCmd(f *cli.Flags) *cobra.Command {
	var (
		req    upgrade.Request
		nodes  string
		wait   bool
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the 0.14 upgrade: write the control key the sidecars watch",
		Long: `Writes the control key /rok/upgrade/control. The elected sidecar takes it
from there: fence GC, migrate the Gateway store, stamp every node's storage,
stamp the shared storage on the master, delete the v2 epoch cache, lift the
fence. Writing the same id again is harmless; after an abort or a failure it
resumes the run from its last finished step.

Before it writes anything, the master checks the run (the preflight):
every node is up and can read its storage, the master can read the shared
storage, no Gateway is running, no other fence or run is in the way, and
etcd serves the v2 API. A run that cannot succeed is rejected, with GC never
fenced; one that waits for a node says so. --dry-run prints the same checks
without writing the control key (exit 0 when the run would start).

With --wait, follows the run and exits 0 only when it ends "done".`,
		Example: `  rokup start --dry-run                          # check first: writes nothing
  rokup start --id upgrade-0.14 --wait           # every live sidecar, nodelocal mode
  rokup start --nodes node-1,node-2,node-3 --precollect --wait
  rokup start --mode local --nodes node-1        # a one-node installation
  rokup start --id upgrade-0.14                  # resume a failed or aborted run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req.Action = upgrade.ActionUpgrade
			req.Nodes = splitList(nodes)
			if dryRun {
				return dryRunStart(cmd.Context(), f, cmd.OutOrStdout(), req)
			}
			return writeControl(cmd.Context(), f, cmd.OutOrStdout(), req, wait)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&req.ID, "id", "upgrade-0.14", "run id")
	fl.StringVar(&req.Mode, "mode", upgrade.ModeNodelocal, "nodelocal or local")
	fl.StringVar(&nodes, "nodes", "", "nodes to upgrade, comma-separated (default: the live sidecars)")
	fl.BoolVar(&req.Precollect, "precollect", false, "run GC before fencing it, so fewer objects need an epoch")
	fl.BoolVar(&req.Republish, "republish", false, "re-publish the published buckets after the Gateway move")
	fl.BoolVar(&wait, "wait", false, "follow the run until it ends; exit 0 only when it is done")
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag, cli.GWPrefixFlag))
	fl.BoolVar(&dryRun, "dry-run", false, "print the preflight the master would make, write nothing")
	cmd.MarkFlagsMutuallyExclusive("dry-run", "wait")
	return cmd
}

// dryReport is the -o json shape of start --dry-run.
type dryReport struct {
	ID       string            `json:"id"`
	Mode     string            `json:"mode"`
	Nodes    []string          `json:"nodes"`
	Master   string            `json:"master"`
	Existing string            `json:"existing,omitempty"` // state of a record with this id
	Verdict  string            `json:"verdict"`            // start, wait, reject, nothing
	Problems []upgrade.Problem `json:"problems"`
}

// controlClient validates req as the sidecar will (bad usage otherwise)
// and dials etcd: the control value and a client the caller closes.
func controlClient(ctx context.Context, f *cli.Flags, req upgrade.Request) ([]byte, *clientv3.Client, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	if _, err := upgrade.DecodeRequest(b); err != nil {
		return nil, nil, &cli.UsageError{Err: err}
	}
	cli3, err := f.V3(ctx)
	if err != nil {
		return nil, nil, err
	}
	return b, cli3, nil
}

// dryRunStart makes the master's preflight from here and prints it; it
// writes nothing. Exit 0 when the run would start.
func dryRunStart(ctx context.Context, f *cli.Flags, w io.Writer, req upgrade.Request) error {
	_, cli3, err := controlClient(ctx, f, req)
	if err != nil {
		return err
	}
	defer cli3.Close()
	v2, err := f.V2()
	if err != nil {
		return err
	}
	keys := upgrade.DefaultKeys
	rep := dryReport{ID: req.ID, Mode: req.Mode, Problems: []upgrade.Problem{}}
	var done []string
	existing, err := upgrade.NewStore(cli3, keys).View(ctx, req.ID)
	switch {
	case errors.Is(err, upgrade.ErrNoRun):
	case err != nil:
		return err
	default:
		rep.Existing = existing.State
		done = existing.DoneSteps()
	}
	if existing != nil && (existing.State == upgrade.StateRunning || existing.State == upgrade.StateDone) {
		rep.Verdict, rep.Nodes = "nothing", existing.Nodes
	} else {
		if existing != nil && existing.State != upgrade.StateRejected {
			req.Nodes = existing.Nodes // a resume keeps its nodes
		}
		rep.Nodes, err = upgrade.ResolveNodes(ctx, cli3, keys, req)
		if err != nil {
			rep.Problems = append(rep.Problems, upgrade.Problem{Check: "nodes", Detail: err.Error()})
		}
		if rep.Master, err = upgrade.CurrentLeader(ctx, cli3, keys); err != nil {
			return err
		}
		keysAPI := conn.NewKeysAPI(v2)
		checks := []upgrade.Check{upgrade.EtcdCheck(cli3, cli3.Endpoints(), keysAPI), upgrade.GatewayCheck(keysAPI, f.GWPrefix), upgrade.MoveCheck(cli3, keysAPI, f.GWPrefix)}
		ps, err := upgrade.CheckRun(ctx, cli3, keys, req, rep.Nodes, rep.Master, done, checks)
		if err != nil {
			return err
		}
		rep.Problems = append(rep.Problems, ps...)
		rep.Verdict = "start"
		for _, p := range rep.Problems {
			if !p.Wait {
				rep.Verdict = "reject"
				break
			}
			rep.Verdict = "wait"
		}
	}
	err = f.Report(w, rep, func(w io.Writer) { printDry(w, rep) })
	if err == nil && rep.Verdict != "start" && rep.Verdict != "nothing" {
		err = &cli.ExitError{Code: cli.ExitFailed}
	}
	return err
}

func printDry(w io.Writer, r dryReport) {
	fmt.Fprintf(w, "preflight of run %s (%s mode), written nothing\n", r.ID, r.Mode)
	fmt.Fprintf(w, "  nodes:  %s\n", strings.Join(r.Nodes, ", "))
	master := r.Master
	if master == "" {
		master = "(none elected)"
	}
	fmt.Fprintf(w, "  master: %s\n", master)
	if r.Existing != "" {
		fmt.Fprintf(w, "  run %s exists: %s\n", r.ID, r.Existing)
	}
	for _, p := range r.Problems {
		tag := "REJECT"
		if p.Wait {
			tag = "WAIT  "
		}
		fmt.Fprintf(w, "  %s %s\n", tag, p)
	}
	switch r.Verdict {
	case "start":
		fmt.Fprintf(w, "ok: every check passed; rokup start --id %s would start the run\n", r.ID)
	case "wait":
		fmt.Fprintf(w, "the run would wait (GC not fenced yet) until the above is resolved\n")
	case "reject":
		fmt.Fprintf(w, "the run would be rejected, with nothing written: fix the above first\n")
	case "nothing":
		fmt.Fprintf(w, "writing the same id again changes nothing\n")
	}
}

func newAbortCmd(f *cli.Flags) *cobra.Command {
	var id string
	var wait bool
	cmd := &cobra.Command{
		Use:   "abort",
		Short: "Abort a run after its current batch; the GC fence stays until released",
		Example: `  rokup abort                           # the running run
  rokup abort --id upgrade-0.14 --wait  # and wait until it has stopped`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if id == "" {
				cli3, err := f.V3(ctx)
				if err != nil {
					return err
				}
				runs, err := upgrade.NewStore(cli3, upgrade.DefaultKeys).Runs(ctx)
				cli3.Close()
				if err != nil {
					return err
				}
				for _, r := range runs {
					if r.State == upgrade.StateRunning {
						id = r.ID
						break
					}
				}
				if id == "" {
					return errors.New("no run is running; name one with --id")
				}
			}
			return writeControl(ctx, f, cmd.OutOrStdout(), upgrade.Request{ID: id, Action: upgrade.ActionAbort}, wait)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "run to abort (default: the running one)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the run has stopped")
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag))
	return cmd
}

// writeControl validates req as the sidecar will, writes it, and with wait
// follows the run it names.
func writeControl(ctx context.Context, f *cli.Flags, w io.Writer, req upgrade.Request, wait bool) error {
	b, cli3, err := controlClient(ctx, f, req)
	if err != nil {
		return err
	}
	defer cli3.Close()
	resp, err := cli3.Put(ctx, upgrade.DefaultKeys.Control(), string(b))
	if err != nil {
		return fmt.Errorf("write control key: %w", err)
	}
	rev := resp.Header.Revision
	if !f.JSON() {
		fmt.Fprintf(w, "wrote %s at revision %d: %s\n", upgrade.DefaultKeys.Control(), rev, b)
	}
	if !wait {
		return nil
	}
	run, err := follow(ctx, f, w, cli3, req.ID, rev)
	if err != nil {
		return err
	}
	view, err := withAftermath(ctx, cli3, run)
	if err != nil {
		return err
	}
	if f.JSON() {
		if err := cli.PrintJSON(w, view); err != nil {
			return err
		}
	} else {
		printAftermath(w, view)
	}
	want := upgrade.StateDone
	if req.Action == upgrade.ActionAbort {
		want = upgrade.StateAborted
	}
	if run.State != want {
		return fmt.Errorf("run %s ended %s: %s", run.ID, run.State, run.Error)
	}
	return nil
}

// runView is a run record with what a run that did not finish left
// behind: the GC fence it still holds, and the commands that come next.
type runView struct {
	*upgrade.Run
	Fence *fencing.Holding `json:"fence,omitempty"`
	Next  []string         `json:"next,omitempty"`
}

// withAftermath reads the fence and says what to do after a run that ended
// failed, aborted or rejected.
func withAftermath(ctx context.Context, cli3 *clientv3.Client, run *upgrade.Run) (runView, error) {
	v := runView{Run: run}
	switch run.State {
	case upgrade.StateFailed, upgrade.StateAborted, upgrade.StateRejected:
	default:
		return v, nil
	}
	h, err := fencing.NewFence(cli3).Get(ctx)
	if err != nil {
		return v, err
	}
	holder := upgrade.FenceHolder(run.ID)
	if h != nil && h.Holder == holder {
		v.Fence = h
	}
	resume := fmt.Sprintf("rokup start --id %s", run.ID)
	switch {
	case run.State == upgrade.StateRejected:
		v.Next = []string{fmt.Sprintf("nothing was written for it: fix what the error says (rokup start --dry-run checks it), then %s", resume)}
	case run.State == upgrade.StateAborted:
		v.Next = []string{fmt.Sprintf("resume it from its last finished step: %s", resume)}
	default:
		v.Next = []string{fmt.Sprintf("fix what the error says (a node's sidecar or its storage roots, etcd), then resume from the last finished step: %s", resume)}
	}
	if v.Fence != nil {
		v.Next = append(v.Next, fmt.Sprintf("or give the upgrade up: rokup fence release --holder %s (risk: GC then runs on a half-upgraded cluster, which the 0.14 upgrade guide forbids; upgrade again before Rok 0.14 serves)", holder))
	}
	return v, nil
}

// printAftermath is the text of withAftermath.
func printAftermath(w io.Writer, v runView) {
	if len(v.Next) == 0 {
		return
	}
	if v.Fence != nil {
		fmt.Fprintf(w, "GC is still fenced, %s: no GC deletes anything anywhere until it is lifted\n", v.Fence)
	} else {
		fmt.Fprintln(w, "GC is not fenced by this run")
	}
	for i, n := range v.Next {
		prefix := "next: "
		if i > 0 {
			prefix = "      "
		}
		fmt.Fprintln(w, prefix+n)
	}
}

// follow waits until the run answering the control write at rev ends,
// printing its progress on text output.
func follow(ctx context.Context, f *cli.Flags, w io.Writer, cli3 *clientv3.Client, id string, rev int64) (*upgrade.Run, error) {
	store := upgrade.NewStore(cli3, upgrade.DefaultKeys)
	tty := term.IsTerminal(int(os.Stdout.Fd())) && !f.JSON()
	seen := map[string]string{} // plain output: print a line only when it changes
	for {
		run, err := answer(ctx, store, id, rev)
		if err != nil && !errors.Is(err, upgrade.ErrNoRun) {
			return nil, err
		}
		if run != nil && !f.JSON() {
			out := renderRun(run)
			if tty {
				fmt.Fprint(w, "\033[H\033[2J"+out)
			} else {
				lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
				for i, line := range lines {
					key := fmt.Sprint(i)
					if seen[key] != line {
						seen[key] = line
						fmt.Fprintln(w, strings.TrimSpace(line))
					}
				}
			}
		}
		if run != nil && upgrade.Terminal(run.State) {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// answer finds the record that answers the control write at rev: the run
// id's own record once it has handled rev, or a rejected-<rev> record.
func answer(ctx context.Context, store *upgrade.Store, id string, rev int64) (*upgrade.Run, error) {
	if r, err := store.View(ctx, fmt.Sprintf("rejected-%d", rev)); err == nil {
		return r, nil
	}
	r, err := store.View(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.ControlRev < rev {
		return nil, upgrade.ErrNoRun // not handled yet
	}
	return r, nil
}

func newStatusCmd(f *cli.Flags) *cobra.Command {
	var id string
	var watch bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show upgrade runs, their steps per node, progress and rates",
		Long: `Show the upgrade runs (newest first) and the live sidecars, or one run with
--id: its steps per node with progress and rates, its preflight, and for a
run that failed or was aborted, the GC fence it still holds and the next
command. -o json prints the run record scripts read
(docs/design.md#run-record).`,
		Example: `  rokup status                                # every run, the latest in full
  rokup status --id upgrade-0.14 --watch      # follow one run
  rokup status --id upgrade-0.14 -o json      # the run record, for scripts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cli3, err := f.V3(ctx)
			if err != nil {
				return err
			}
			defer cli3.Close()
			store := upgrade.NewStore(cli3, upgrade.DefaultKeys)
			w := cmd.OutOrStdout()
			for {
				out, terminal, err := statusOnce(ctx, f, cli3, store, id)
				if err != nil {
					return err
				}
				if !watch || f.JSON() {
					fmt.Fprint(w, out)
					return nil
				}
				if term.IsTerminal(int(os.Stdout.Fd())) {
					fmt.Fprint(w, "\033[H\033[2J")
				}
				fmt.Fprint(w, out)
				if terminal && id != "" {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
			}
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "one run (default: every run, newest first)")
	cmd.Flags().BoolVar(&watch, "watch", false, "refresh every second")
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag))
	return cmd
}

func statusOnce(ctx context.Context, f *cli.Flags, cli3 *clientv3.Client, store *upgrade.Store, id string) (string, bool, error) {
	var sb strings.Builder
	if id != "" {
		run, err := store.View(ctx, id)
		if err != nil {
			return "", false, err
		}
		view, err := withAftermath(ctx, cli3, run)
		if err != nil {
			return "", false, err
		}
		if f.JSON() {
			err := cli.PrintJSON(&sb, view)
			return sb.String(), true, err
		}
		sb.WriteString(renderRun(run))
		printAftermath(&sb, view)
		return sb.String(), upgrade.Terminal(run.State), nil
	}
	runs, err := store.Runs(ctx)
	if err != nil {
		return "", false, err
	}
	sidecars, err := sidecarsOf(ctx, cli3)
	if err != nil {
		return "", false, err
	}
	if f.JSON() {
		if runs == nil {
			runs = []*upgrade.Run{}
		}
		err := cli.PrintJSON(&sb, struct {
			Runs     []*upgrade.Run `json:"runs"`
			Sidecars []sidecarView  `json:"sidecars"`
		}{runs, sidecars})
		return sb.String(), true, err
	}
	var live []string
	for _, s := range sidecars {
		if s.Live {
			live = append(live, s.Node)
		}
	}
	fmt.Fprintf(&sb, "live sidecars: %s\n", strings.Join(live, ", "))
	for _, s := range sidecars {
		if !s.Live || s.Ready == nil {
			continue
		}
		unserved := s.Ready.Unserved()
		for _, step := range slices.Sorted(maps.Keys(unserved)) {
			fmt.Fprintf(&sb, "  %s cannot run %s: %s\n", s.Node, step, unserved[step])
		}
	}
	if len(runs) == 0 {
		sb.WriteString("no runs\n")
		return sb.String(), true, nil
	}
	fmt.Fprintf(&sb, "%-24s %-9s %-10s %-20s %s\n", "RUN", "STATE", "LEADER", "CREATED", "ERROR")
	for _, r := range runs {
		fmt.Fprintf(&sb, "%-24s %-9s %-10s %-20s %s\n", r.ID, r.State, r.Leader, r.Created.Format(time.DateTime), r.Error)
	}
	sb.WriteString("\n" + renderRun(runs[0]))
	view, err := withAftermath(ctx, cli3, runs[0])
	if err != nil {
		return "", false, err
	}
	printAftermath(&sb, view)
	return sb.String(), false, nil
}

// renderRun is the text view of one run: a line per step and node.
func renderRun(r *upgrade.Run) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "run %s: %s", r.ID, r.State)
	if r.Mode != "" {
		fmt.Fprintf(&sb, " (%s mode)", r.Mode)
	}
	if r.Leader != "" {
		fmt.Fprintf(&sb, ", master %s", r.Leader)
	}
	sb.WriteString("\n")
	if r.Error != "" {
		fmt.Fprintf(&sb, "  error: %s\n", r.Error)
	}
	if p := r.Preflight; p != nil && p.State != upgrade.PreflightPassed {
		fmt.Fprintf(&sb, "  preflight: %s\n", p.State)
		for _, pr := range p.Problems {
			fmt.Fprintf(&sb, "    - %s\n", pr)
		}
	}
	for _, s := range r.Steps {
		node := s.Node
		if node == "" {
			node = "(master)"
		}
		fmt.Fprintf(&sb, "  %-18s %-10s %-8s %s %s", s.Name, node, s.State, bar(s.Done, s.Total, s.State), counts(s))
		if s.Error != "" {
			fmt.Fprintf(&sb, "  error: %s", s.Error)
		} else if s.Note != "" {
			fmt.Fprintf(&sb, "  (%s)", s.Note)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func counts(s upgrade.Step) string {
	out := fmt.Sprintf("%d", s.Done)
	if s.Total > 0 {
		out += fmt.Sprintf("/%d", s.Total)
	}
	if s.PerSecond > 0 {
		out += fmt.Sprintf(" %.0f/s", s.PerSecond)
	}
	if s.Skipped > 0 {
		out += fmt.Sprintf(" %d skipped", s.Skipped)
	}
	if s.Errors > 0 {
		out += fmt.Sprintf(" %d errors", s.Errors)
	}
	return out
}

func bar(done, total int64, state string) string {
	const width = 20
	filled := 0
	switch {
	case state == upgrade.StateDone:
		filled = width
	case total > 0:
		filled = int(float64(width) * float64(min(done, total)) / float64(total))
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", width-filled) + "]"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// sidecarView is one node that ever ran a sidecar: whether it is live, and
// what it published about itself (its storage readiness).
type sidecarView struct {
	Node string `json:"node"`
	Live bool   `json:"live"`
	upgrade.MemberInfo
}

func sidecarsOf(ctx context.Context, cli3 *clientv3.Client) ([]sidecarView, error) {
	live, known, err := upgrade.Members(ctx, cli3, upgrade.DefaultKeys)
	if err != nil {
		return nil, err
	}
	out := []sidecarView{}
	for _, n := range slices.Sorted(maps.Keys(known)) {
		info, up := live[n]
		if !up {
			info = known[n]
		}
		out = append(out, sidecarView{Node: n, Live: up, MemberInfo: info})
	}
	for _, n := range slices.Sorted(maps.Keys(live)) {
		if _, ok := known[n]; !ok {
			out = append(out, sidecarView{Node: n, Live: true, MemberInfo: live[n]})
		}
	}
	return out, nil
}
