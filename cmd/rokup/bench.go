package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/bench"
	"github.com/rokup/rokup/cli"
)

// newBenchCmd answers "how long will my maintenance window be?" with
// measurements taken side by side in one run (docs/design.md#performance).
func newBenchCmd(f *cli.Flags) *cobra.Command {
	cfg := bench.Config{}
	var cpuprofile string
	var inProcess bool
	cmd := &cobra.Command{
		Use:   "bench [--docs N] [--objects M] [--value-size B] [--nodes K] [--endpoints …]",
		Short: "Benchmark the upgrade side by side with a naive copier and the etcd ceiling",
		Long: `Benchmark the upgrade: seed a pre-0.14 installation, then measure, in this
one process and on the same etcd, side by side:

  ceiling gw / ceiling stamp  batched transactional puts of as many keys of the
                              same sizes, as fast as etcd takes them (several
                              batch shapes tried, the best reported)
  naive gw copy               one v2 get and one v3 put per document, in sequence
  gw migrate                  the real 0002_v3_store move (copy and verification)
  naive stamp                 one v3 put per object, in sequence
  epoch-update                the real stamping of all four scopes
  gc                          the real mark and sweep right after the update
  naive sweep                 one get and one transaction per unreachable object
  ceiling unlink              files the size of those gc collected, removed from
                              the storage's file system 16 at once: what bounds a
                              sweep, which removes one file per object

Naive paths run on a sample (--naive-sample) and are extrapolated; the table
marks them. Without --endpoints an embedded etcd member (fsync on, as in
production) runs in a temp dir that is removed afterwards, in a child process
(this binary, "rokup bench serve-etcd") so that the memory columns are
rokup's own; --in-process keeps it in this process. With --endpoints
the run writes under a random /rokup-bench/<id> prefix of that cluster (v2
and v3) and removes it afterwards: use a staging cluster, never production.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flag("endpoints").Changed {
				c := f.Conn()
				cfg.Etcd = &c
			} else if !inProcess {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("bench: find this binary to run the etcd member: %w (or use --in-process)", err)
				}
				cfg.MemberCommand = []string{exe, "bench", "serve-etcd"}
			}
			if cpuprofile != "" {
				pf, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			stderr := cmd.ErrOrStderr()
			cfg.Log = func(s string) { fmt.Fprintln(stderr, "bench: "+s) }
			cfg.Progress = stageProgress()
			// The report goes out as soon as the last path ran, before
			// the temp dir's removal (minutes at 10M objects).
			var reported bool
			var perr error
			report := func(res *bench.Result) {
				if reported || res == nil || len(res.Paths) == 0 {
					return
				}
				reported = true
				perr = f.Report(cmd.OutOrStdout(), res, func(w io.Writer) { res.Text(w) })
			}
			cfg.Measured = func(res *bench.Result, _ error) { report(res) }
			res, err := bench.Run(cmd.Context(), cfg)
			if errors.Is(err, bench.ErrBadConfig) {
				return cli.Usagef("%v", err)
			}
			report(res)
			if err == nil {
				err = perr
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.Docs, "docs", bench.DefaultDocs, "Gateway documents to seed and move")
	fl.IntVar(&cfg.Objects, "objects", bench.DefaultObjects, "maps and chocks to seed, stamp and collect")
	fl.IntVar(&cfg.ValueSize, "value-size", bench.DefaultValueSize, "bytes of a plain Gateway document")
	fl.IntVar(&cfg.Nodes, "nodes", bench.DefaultNodes, "nodes whose nodelocal storage is seeded")
	fl.IntVar(&cfg.NaiveSample, "naive-sample", bench.DefaultNaiveSample, "documents or objects the naive paths really process")
	fl.IntVar(&cfg.TuneItems, "tune-items", bench.DefaultTuneItems, "keys each ceiling batch shape is tried on")
	fl.StringVar(&cfg.Dir, "dir", "", "where the temp dir goes (default the system's temp dir)")
	fl.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fl.BoolVar(&inProcess, "in-process", false, "run the embedded etcd member in this process (memory columns then include etcd's)")
	cmd.AddCommand(newServeEtcdCmd())
	cmd.Example = `  rokup bench                                        # small, embedded etcd
  rokup bench --docs 200000 --objects 1000000 -o json # the acceptance size
  rokup bench --endpoints https://etcd-staging-1:2379 --cacert ca.pem --cert c.pem --key k.pem \
      --docs 200000 --objects 1000000 --dir /var/lib/rok/tmp  # a staging cluster, never production`
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag))
	return cmd
}

// newServeEtcdCmd is the child side of the bench's embedded member; it is
// not for people.
func newServeEtcdCmd() *cobra.Command {
	var dataDir, clientURL, peerURL string
	cmd := &cobra.Command{
		Use:    "serve-etcd",
		Short:  "Run the bench's embedded etcd member until SIGTERM",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return bench.ServeMember(ctx, dataDir, clientURL, peerURL)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "", "the member's data dir")
	fl.StringVar(&clientURL, "client-url", "", "where it serves clients")
	fl.StringVar(&peerURL, "peer-url", "", "its peer URL")
	for _, n := range []string{"data-dir", "client-url", "peer-url"} {
		cmd.MarkFlagRequired(n)
	}
	return cmd
}

// stageProgress shows one progress line or bar per stage on stderr.
func stageProgress() func(stage string, done, total int64) {
	var mu sync.Mutex
	var cur string
	var p *cli.Progress
	return func(stage string, done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if stage != cur {
			if p != nil {
				p.Finish()
			}
			cur, p = stage, cli.NewProgress(stage, total)
		}
		p.Set(done, total)
		if total > 0 && done >= total {
			p.Finish()
			cur, p = "", nil
		}
	}
}
