package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/rehearse"
)

func newRehearseCmd(f *cli.Flags) *cobra.Command {
	var opts rehearse.Options
	cmd := &cobra.Command{
		Use:   "rehearse --data-dir DIR | --endpoints URLS",
		Short: "Rehearse the etcd side of the upgrade on a copy of production",
		Long: `Rehearse the etcd side of the upgrade on a copy of production, before the
maintenance window. DIR is a copy of one etcd member's data directory (etcd 3.4
or 3.5, holding the v2 store), or the output of ETCDCTL_API=2 etcdctl backup;
it is never written. rehearse copies it into --work-dir (default a temporary
directory, removed afterwards unless --keep), serves the copy with an embedded
etcd 3.5 member (--force-new-cluster, v2 API on, loopback ports only), and runs
the real code of the run's etcd-side steps against it: gc-fence, gw-migrate
(the Gateway migrations with their verification), republish, the v2 /epochs
cleanup, gc-unfence. The storage steps (epoch-update) are not rehearsed.

With --endpoints (and the TLS and auth flags) the store is read from a live
cluster instead, into a new embedded member, and rehearsed there: the v2
documents under --gw-prefix (TTLs kept), the hidden ledger and liveness paths,
the v2 epoch cache, and in v3 the keys under the prefix, the move's state, the
GC fence and the run records. The live cluster is only read: plain v2 GETs
and v3 range reads, so its v3 revision and v2 index do not move.

The report gives what the store holds, every problem the real run would hit
(each named: oversize documents, v3 keys holding other bytes, a running
Gateway, a GC fence or an unfinished run), each step's time and rate, and the
Gateway's downtime predicted from the move's measured rate, on this machine.

Exit status: 0 when the real run would succeed, 1 when it would fail (the
report says why) or the rehearsal could not be made, 2 on bad usage (a DIR that
is not an etcd data directory included).`,
		Example: `  rokup rehearse --data-dir /backup/etcd-node-1
  rokup rehearse --data-dir /backup/etcd-node-1 --work-dir /srv/rehearsal --keep -o json
  rokup rehearse --endpoints https://etcd-1:2379 --cacert ca.pem --cert client.pem --key client-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			live := cmd.Flags().Changed("endpoints")
			switch {
			case opts.DataDir == "" && !live:
				return cli.Usagef("give --data-dir (a copy of one etcd member's data directory) or --endpoints (a live cluster, only read)")
			case opts.DataDir != "" && live:
				return cli.Usagef("--data-dir and --endpoints do not go together: rehearse a data directory or a live cluster")
			}
			opts.GWPrefix = f.GWPrefix
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if live {
				c3, err := f.V3(ctx)
				if err != nil {
					return err
				}
				defer c3.Close()
				c2, err := f.V2()
				if err != nil {
					return err
				}
				opts.Live = &rehearse.Live{V3: c3, V2: conn.NewKeysAPI(c2), Endpoints: c3.Endpoints()}
			}
			var prog *cli.Progress
			label := ""
			opts.Progress = func(step string, done, total int64) {
				if step != label {
					if prog != nil {
						prog.Finish()
					}
					label, prog = step, cli.NewProgress("rehearse "+step, total)
				}
				prog.Set(done, total)
			}
			rep, err := rehearse.Run(ctx, opts)
			if prog != nil {
				prog.Finish()
			}
			switch {
			case errors.Is(err, rehearse.ErrNotDataDir), errors.Is(err, rehearse.ErrEmptyDir),
				errors.Is(err, rehearse.ErrWorkDir), errors.Is(err, os.ErrNotExist):
				return &cli.UsageError{Err: err}
			case err != nil:
				return err
			}
			if err := f.Report(cmd.OutOrStdout(), rep, rep.Text); err != nil {
				return err
			}
			if !rep.OK {
				return &cli.ExitError{Code: cli.ExitFailed, Err: fmt.Errorf("the real run would fail: %s", firstProblem(rep))}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.DataDir, "data-dir", "", "a copy of one etcd member's data directory (never written)")
	fl.StringVar(&opts.WorkDir, "work-dir", "", "where the copy goes (default a temporary directory); needs the data directory's size free")
	fl.BoolVar(&opts.Keep, "keep", false, "keep the copy (in --work-dir/data) after the rehearsal")
	fl.StringVar(&opts.V2Epochs, "v2-epochs", libmap.DefaultV2Dir, "the v2 epoch cache dir")
	fl.StringVar(&opts.RunID, "id", "upgrade-0.14", "the run id rehearsed (its GC fence holder is upgrade/<id>)")
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag, cli.GWPrefixFlag))
	return cmd
}

func firstProblem(rep *rehearse.Report) string {
	if len(rep.Problems) == 0 {
		return "see the report"
	}
	s := rep.Problems[0].String()
	if n := len(rep.Problems); n > 1 {
		s += fmt.Sprintf(" (and %d more problems)", n-1)
	}
	return s
}
