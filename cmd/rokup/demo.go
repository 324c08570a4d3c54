package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/rehearse"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/sidecar"
	"github.com/rokup/rokup/upgrade"
	"github.com/rokup/rokup/verify"
)

type demoOptions struct {
	docs, objects, nodes, valueSize int
	seed                            int64
	mode                            string
	keep                            bool
}

func newDemoCmd(f *cli.Flags) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole upgrade on an embedded etcd cluster with a seeded installation",
		Long: `One process, no arguments needed: an embedded 3-member etcd cluster in a
temporary dir, a seeded pre-0.14 installation (Gateway documents with TTLs
and published buckets in v2, a v2 epoch cache, storage for every node), one
sidecar per node, the operator's control write, live progress, and a final
report with data-safety checks read back from etcd and storage. Exits 0 only
if the run ended done and every check passed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.mode != upgrade.ModeNodelocal && o.mode != upgrade.ModeLocal {
				return cli.Usagef("--mode must be nodelocal or local")
			}
			if o.mode == upgrade.ModeLocal {
				o.nodes = 1
			}
			if o.nodes < 1 || o.nodes > 9 {
				return cli.Usagef("--nodes must be 1 to 9")
			}
			return runDemo(cmd.Context(), f, cmd.OutOrStdout(), o)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.docs, "docs", 3000, "Gateway documents to seed")
	fl.IntVar(&o.objects, "objects", 9000, "maps and chocks to seed, all nodes together")
	fl.IntVar(&o.nodes, "nodes", 3, "nodes (sidecars and etcd members)")
	fl.IntVar(&o.valueSize, "value-size", 256, "bytes of a plain Gateway document")
	fl.Int64Var(&o.seed, "seed", 1, "seed of the installation")
	fl.StringVar(&o.mode, "mode", upgrade.ModeNodelocal, "nodelocal, or local (one node)")
	fl.BoolVar(&o.keep, "keep", false, "keep the temporary dir (etcd data, storage, sidecar log) for inspection")
	cmd.Example = `  rokup demo
  rokup demo --mode local --docs 10000 --objects 50000 --keep`
	cli.Uses(cmd, cli.Flag(cli.OutputFlag))
	return cmd
}

type demoReport struct {
	Dir       string           `json:"dir,omitempty"`
	Seeded    demoSeeded       `json:"seeded"`
	Rehearsal *rehearse.Report `json:"rehearsal"`
	Run       *upgrade.Run     `json:"run"`
	Checks    []verify.Check   `json:"checks"`
	OK        bool             `json:"ok"`
}

type demoSeeded struct {
	Docs      int `json:"docs"`
	TTLDocs   int `json:"ttl_docs"`
	Published int `json:"published_buckets"`
	Objects   int `json:"objects"`
	Bad       int `json:"bad_entries"`
	V2Epochs  int `json:"v2_epoch_keys"`
}

func runDemo(ctx context.Context, f *cli.Flags, w io.Writer, o demoOptions) error {
	say := func(format string, args ...any) {
		if !f.JSON() {
			fmt.Fprintf(w, format+"\n", args...)
		}
	}
	dir, err := os.MkdirTemp("", "rokup-demo-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	members := max(3, o.nodes)
	if o.mode == upgrade.ModeLocal {
		members = 1
	}
	say("1. starting an embedded %d-member etcd cluster in %s (v2 API on, fsync off: a demo)", members, dir)
	cluster, err := embed.StartCluster(ctx, embed.ClusterConfig{Size: members, Dir: filepath.Join(dir, "etcd"), NoFsync: true})
	if err != nil {
		return err
	}
	defer func() { conn.CloseIdleV2(); cluster.Close() }()
	cc := conn.Config{Endpoints: cluster.Endpoints(), DialTimeout: 5 * time.Second}
	cli3, err := conn.V3(ctx, cc)
	if err != nil {
		return err
	}
	defer cli3.Close()
	v2c, err := conn.V2(cc)
	if err != nil {
		return err
	}
	keys := conn.NewKeysAPI(v2c)

	nodes := seed.Nodes(o.nodes)
	layout := seed.Layout{Dir: filepath.Join(dir, "storage")}
	say("2. seeding a pre-0.14 installation: %d Gateway documents, %d objects on %d nodes", o.docs, o.objects, o.nodes)
	prog := cli.NewQuietProgress()
	if !f.JSON() {
		prog = cli.NewProgress("   seed", 0)
	}
	m, err := seed.Run(ctx, keys, seed.Config{Docs: o.docs, Objects: o.objects, Nodes: nodes, ValueSize: o.valueSize,
		Seed: o.seed, Layout: layout, OnProgress: func(_ string, done, total int64) { prog.Set(done, total) }})
	prog.Finish()
	if err != nil {
		return fmt.Errorf("seed: %w", conn.V2Error(err))
	}
	rep := demoReport{Seeded: demoSeeded{Docs: m.Docs, TTLDocs: m.TTLDocs, Published: len(m.Published),
		Objects: m.Total, Bad: len(m.Bad), V2Epochs: m.V2EpochKeys}}
	if o.keep {
		rep.Dir = dir
	}
	say("   %d documents (%d with TTLs, %d published buckets), %d objects, %d bad entries, %d v2 epoch keys",
		m.Docs, m.TTLDocs, len(m.Published), m.Total, len(m.Bad), m.V2EpochKeys)

	// What an operator does before the window: rehearse the etcd side on a
	// copy, read-only here.
	say("   rehearsing the etcd side first, on a read-only copy (rokup rehearse --endpoints):")
	reh, err := rehearse.Run(ctx, rehearse.Options{GWPrefix: m.GWPrefix, V2Epochs: m.V2Epochs,
		Live: &rehearse.Live{V3: cli3, V2: keys, Endpoints: cluster.Endpoints()}})
	if err != nil {
		return fmt.Errorf("rehearsal: %w", err)
	}
	rep.Rehearsal = reh
	if !f.JSON() {
		var b strings.Builder
		reh.Text(&b)
		for _, line := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
			fmt.Fprintf(w, "   | %s\n", line)
		}
	}
	if !reh.OK {
		return fmt.Errorf("the rehearsal found problems the real run would hit")
	}

	logFile := filepath.Join(dir, "sidecars.log")
	lg, err := fileLogger(logFile)
	if err != nil {
		return err
	}
	say("3. starting %d sidecars (log: %s)", len(nodes), logFile)
	var apps []*fx.App
	defer func() {
		for _, app := range apps {
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_ = app.Stop(sctx)
			cancel()
		}
	}()
	for i, n := range nodes {
		// Each node's sidecar talks to its own etcd member first, as on a
		// real cluster with a member per node.
		eps := append([]string{}, cluster.Endpoints()[i%members:]...)
		eps = append(eps, cluster.Endpoints()[:i%members]...)
		app := sidecar.New(sidecar.Config{
			Node: n, Version: Version, Conn: conn.Config{Endpoints: eps, DialTimeout: 5 * time.Second},
			GWPrefix: m.GWPrefix, NodelocalRoot: layout.Nodelocal(n), LocalRoot: layout.Local(),
			Keys: upgrade.DefaultKeys, SessionTTL: 3, FlushInterval: 200 * time.Millisecond,
		}, lg.With(zap.String("sidecar", n)))
		if err := app.Start(ctx); err != nil {
			return fmt.Errorf("start sidecar %s: %w", n, err)
		}
		apps = append(apps, app)
	}
	if err := waitLive(ctx, cli3, len(nodes)); err != nil {
		return err
	}

	req := upgrade.Request{ID: "demo-upgrade-0.14", Action: upgrade.ActionUpgrade, Mode: o.mode, Nodes: nodes, Republish: true}
	b, _ := json.Marshal(req)
	say("4. the operator writes the control key:\n   %s = %s", upgrade.DefaultKeys.Control(), b)
	put, err := cli3.Put(ctx, upgrade.DefaultKeys.Control(), string(b))
	if err != nil {
		return err
	}
	start := time.Now()
	run, err := follow(ctx, f, w, cli3, req.ID, put.Header.Revision)
	if err != nil {
		return err
	}
	rep.Run = run
	say("5. run %s ended %s in %s", run.ID, run.State, time.Since(start).Round(10*time.Millisecond))
	if !f.JSON() {
		printStepTable(w, run)
	}

	rep.Checks = verify.After(ctx, cli3, keys, m)
	rep.OK = run.State == upgrade.StateDone && verify.AllOK(rep.Checks)
	if f.JSON() {
		if err := cli.PrintJSON(w, rep); err != nil {
			return err
		}
	} else {
		say("6. data-safety checks (read back from etcd and storage):")
		for _, c := range rep.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			say("   [%s] %s: %s", mark, c.Name, c.Detail)
		}
		if o.keep {
			say("kept %s", dir)
		}
	}
	if !rep.OK {
		return errors.New("demo failed: see the report above")
	}
	say("demo passed: the cluster is on 0.14 and nothing was lost")
	return nil
}

func printStepTable(w io.Writer, run *upgrade.Run) {
	fmt.Fprintf(w, "   %-18s %-8s %-6s %10s %9s %12s\n", "STEP", "NODE", "STATE", "ITEMS", "SECONDS", "ITEMS/S")
	for _, s := range run.Steps {
		secs := s.Finished.Sub(s.Started).Seconds()
		if s.Started.IsZero() || s.Finished.IsZero() {
			secs = 0
		}
		rate := 0.0
		if secs > 0 {
			rate = float64(s.Done) / secs
		}
		fmt.Fprintf(w, "   %-18s %-8s %-6s %10d %9.2f %12.0f\n", s.Name, s.Node, s.State, s.Done, secs, rate)
	}
}

// waitLive waits until n sidecars have registered.
func waitLive(ctx context.Context, cli3 *clientv3.Client, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		live, err := upgrade.LiveMembers(ctx, cli3, upgrade.DefaultKeys)
		if err == nil && len(live) >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d sidecars registered: %w", len(live), n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func fileLogger(path string) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	zc.OutputPaths = []string{path}
	zc.ErrorOutputPaths = []string{path}
	zc.Sampling = nil
	return zc.Build()
}
