package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// seedSummary is the -o json report of rokup seed; --manifest regenerates
// every object.
type seedSummary struct {
	Seed          int64              `json:"seed"`
	Nodes         []string           `json:"nodes"`
	GWPrefix      string             `json:"gw_prefix"`
	Docs          int                `json:"docs"`
	TTLDocs       int                `json:"ttl_docs"`
	Buckets       int                `json:"buckets"`
	Published     int                `json:"published"`
	Versions      int                `json:"versions"`
	V2EpochKeys   int                `json:"v2_epoch_keys"`
	V2EpochEvery  int                `json:"v2_epoch_every"` // 1: every object has a v2 epoch key; k: every k-th
	Objects       map[string]int     `json:"objects"`        // per scope
	Reachable     int                `json:"reachable"`
	Garbage       int                `json:"garbage"`
	Bad           int                `json:"bad"`
	MissingChocks int                `json:"missing_chocks"`
	LocalRoot     string             `json:"local_root"`
	NodelocalRoot map[string]string  `json:"nodelocal_roots"`
	Manifest      string             `json:"manifest,omitempty"`
	Seconds       float64            `json:"seconds"`
	Rates         map[string]float64 `json:"per_s"`
	PeakRSSMiB    float64            `json:"peak_rss_mib"`
	stages        map[string]*cli.Progress
}

func newSeedCmd(f *cli.Flags) *cobra.Command {
	var (
		cfg      seed.Config
		nodes    int
		manifest string
	)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Write a pre-0.14 installation of a chosen size",
		Long: `Write a pre-0.14 Rok installation into an etcd (v2 store) and storage roots,
the same for the same --seed: Gateway documents under --gw-prefix (nested, some
with TTLs, the hidden _migrations/gw/0001_initial ledger entry, buckets some of
them "published": true, versions naming their maps), the stale v2 /epochs
cache, and for --nodes K nodes (node-1…node-K) a nodelocal root each plus one
shared local root under --dir, with maps that reference chocks, a share of
garbage, and a few bad entries. --manifest writes what was seeded as JSON: the
sizes, roots and seed from which every object and whether it is reachable are
regenerated (seed.ReadManifest), and the bad entries.

It streams: its memory does not grow with --objects (peak_rss_mib in -o json).
etcd's v2 store holds its keys in memory, so above --v2-epochs-max objects
the v2 epoch cache holds every k-th object's key only (v2_epoch_every).

It refuses a non-empty prefix, /epochs or storage root unless --force (which
writes over what is there and deletes nothing).`,
		Example: `  rokup seed --docs 100000 --objects 200000 --nodes 3 --dir /srv/rehearsal --manifest seed.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.Docs < 0 || cfg.Objects < 0 || cfg.ValueSize < 0 || nodes < 1 {
				return cli.Usagef("--docs, --objects and --value-size must be ≥ 0 and --nodes ≥ 1")
			}
			if cfg.V2EpochMax == 0 || cfg.V2EpochMax < -1 {
				return cli.Usagef("--v2-epochs-max must be ≥ 1, or -1 for every object")
			}
			cfg.GWPrefix = f.GWPrefix
			cfg.Nodes = seed.Nodes(nodes)
			switch {
			case cfg.Layout.Dir != "":
			case f.NodelocalRoot != "" && f.LocalRoot != "":
				if nodes != 1 {
					return cli.Usagef("--nodelocal-root is one node's storage: use --dir for --nodes %d", nodes)
				}
				cfg.Layout = seed.Layout{NodelocalRoot: f.NodelocalRoot, LocalRoot: f.LocalRoot}
				cfg.Nodes = []string{f.Node}
			default:
				return cli.Usagef("storage: give --dir (a parent for every node's roots), or --nodelocal-root and --local-root")
			}
			c2, err := f.V2()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()

			sum := seedSummary{stages: map[string]*cli.Progress{}, Rates: map[string]float64{}}
			starts := map[string]time.Time{}
			start := time.Now()
			// A stage's first report comes after its first items are done:
			// it began when the one before it ended (the stages run in turn).
			began := start
			cfg.OnProgress = func(stage string, done, total int64) {
				p, ok := sum.stages[stage]
				if !ok {
					p = cli.NewProgress("seed "+stage, total).Since(began)
					sum.stages[stage] = p
					starts[stage] = began
				}
				p.Set(done, total)
				if done == total {
					p.Finish()
					if s := time.Since(starts[stage]).Seconds(); s > 0 {
						sum.Rates[stage] = float64(total) / s
					}
					began = time.Now()
				}
			}
			man, err := seed.Run(ctx, conn.NewKeysAPI(c2), cfg)
			if err != nil {
				return err
			}
			// Each nodelocal root remembers its node, so a sidecar, an epoch
			// update or a GC run there under another --node refuses.
			for _, n := range cfg.Nodes {
				if err := composer.ClaimRoot(cfg.Layout.Nodelocal(n), n); err != nil {
					return err
				}
			}
			sum.fill(man)
			sum.Seconds = time.Since(start).Seconds()
			sum.PeakRSSMiB = cli.PeakRSSMiB()
			if manifest != "" {
				if err := man.WriteFile(manifest); err != nil {
					return fmt.Errorf("write manifest: %w", err)
				}
				sum.Manifest = manifest
			}
			return f.Report(cmd.OutOrStdout(), sum, func(w io.Writer) { sum.print(w) })
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.Docs, "docs", 1000, "Gateway documents to write in v2")
	fl.IntVar(&cfg.Objects, "objects", 2000, "valid maps and chocks on storage, all nodes together")
	fl.IntVar(&nodes, "nodes", 3, "nodes, named node-1…node-K")
	fl.IntVar(&cfg.ValueSize, "value-size", seed.DefaultValueSize, "bytes of a plain Gateway document")
	fl.Int64Var(&cfg.Seed, "seed", 1, "the same seed writes the same installation")
	fl.BoolVar(&cfg.Force, "force", false, "write into a non-empty prefix or root (nothing is deleted)")
	fl.StringVar(&cfg.Layout.Dir, "dir", "", "storage parent: <dir>/<node>/nodelocal and <dir>/local")
	fl.StringVar(&manifest, "manifest", "", "write the manifest (what was seeded, from which every object is regenerated) to this file")
	fl.IntVar(&cfg.Workers, "workers", seed.DefaultWorkers, "concurrent v2 writes and file writes")
	fl.StringVar(&cfg.V2Epochs, "v2-epochs", libmap.DefaultV2Dir, "the v2 epoch cache dir")
	fl.IntVar(&cfg.V2EpochMax, "v2-epochs-max", seed.DefaultV2EpochMax,
		"at most this many v2 epoch keys: above, every k-th object's (etcd's v2 store holds them in memory); -1 for all")
	cli.Uses(cmd, cli.ConnFlags, cli.StorageFlags, cli.Flag(cli.OutputFlag, cli.GWPrefixFlag))
	return cmd
}

func (s *seedSummary) fill(m *seed.Manifest) {
	s.Seed, s.Nodes, s.GWPrefix = m.Seed, m.Nodes, m.GWPrefix
	s.Docs, s.TTLDocs, s.Buckets, s.Published, s.Versions = m.Docs, m.TTLDocs, len(m.Buckets), len(m.Published), m.Versions
	s.V2EpochKeys, s.Bad, s.MissingChocks = m.V2EpochKeys, len(m.Bad), len(m.MissingChocks)
	s.LocalRoot, s.NodelocalRoot = m.LocalRoot, m.NodelocalRoots
	s.V2EpochEvery = m.V2EpochEvery
	s.Objects = map[string]int{}
	for _, sc := range libmap.Scopes() {
		s.Objects[string(sc)] = m.Count(sc, "")
	}
	s.Reachable = m.Reachable()
	s.Garbage = m.Total - s.Reachable
}

func (s *seedSummary) print(w io.Writer) {
	fmt.Fprintf(w, "seeded (seed %d) in %.1fs\n", s.Seed, s.Seconds)
	fmt.Fprintf(w, "  v2 %s: %d documents (%d with a TTL), %d buckets (%d published), %d versions, ledger %s/%s\n",
		s.GWPrefix, s.Docs, s.TTLDocs, s.Buckets, s.Published, s.Versions, s.GWPrefix, seed.LedgerEntry)
	if s.V2EpochEvery > 1 {
		fmt.Fprintf(w, "  v2 epochs: %d keys, a sample (every %d-th object): etcd's v2 store holds every key in memory\n", s.V2EpochKeys, s.V2EpochEvery)
	} else {
		fmt.Fprintf(w, "  v2 epochs: %d keys\n", s.V2EpochKeys)
	}
	fmt.Fprintf(w, "  storage: %d maps-uuid, %d chocks-idx on %d nodes; %d maps-ca, %d chocks-ca in %s\n",
		s.Objects["maps-uuid"], s.Objects["chocks-idx"], len(s.Nodes), s.Objects["maps-ca"], s.Objects["chocks-ca"], s.LocalRoot)
	fmt.Fprintf(w, "  %d reachable, %d garbage, %d bad entries, %d references to missing chocks\n", s.Reachable, s.Garbage, s.Bad, s.MissingChocks)
	for _, n := range s.Nodes {
		fmt.Fprintf(w, "  %s nodelocal root: %s\n", n, s.NodelocalRoot[n])
	}
	if s.Manifest != "" {
		fmt.Fprintf(w, "  manifest: %s\n", s.Manifest)
	}
}
