package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/bench"
	"github.com/rokup/rokup/cli"
)

// newBenchCmd answers "how long will my maintenance window be?" with
// measurements taken side by side in one run (SPEC §9).
func newBenchCmd(f *cli.Flags) *cobra.Command {
	cfg := bench.Config{}
	var cpuprofile string
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

Naive paths run on a sample (--naive-sample) and are extrapolated; the table
marks them. Without --endpoints an embedded etcd member (fsync on, as in
production) runs in a temp dir that is removed afterwards. With --endpoints
the run writes under a random /rokup-bench/<id> prefix of that cluster (v2
and v3) and removes it afterwards: use a staging cluster, never production.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flag("endpoints").Changed {
				c := f.Conn()
				cfg.Etcd = &c
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
			res, err := bench.Run(cmd.Context(), cfg)
			if res != nil && len(res.Paths) > 0 {
				if perr := f.Report(cmd.OutOrStdout(), res, func(w io.Writer) { res.Text(w) }); perr != nil && err == nil {
					err = perr
				}
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
	}
}
