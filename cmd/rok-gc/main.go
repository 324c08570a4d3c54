package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/gc"
)

func main() { cli.Execute(newRoot()) }

func newRoot() *cobra.Command {
	var ca, dryRun, v2Epochs bool
	root := &cobra.Command{
		Use:   "rok-gc [--ca] [--dry-run]",
		Short: "Collect unreachable maps and chocks, never while GC is fenced",
		Long: `Collect the maps and chocks nothing reaches any more.

Without --ca, rok-gc sweeps this node's nodelocal storage (--nodelocal-root,
--node): every maps-uuid map is a live volume, and the chocks-idx no map lists
are garbage. With --ca it sweeps the shared content-addressed storage
(--local-root): the maps-ca that Gateway versions name (read from the v3 and
the v2 store) and their chocks-ca are kept, the rest is garbage. Only one CA
sweep runs in the whole cluster at a time.

An object is collected only if its epoch is older than the run: an object
without an epoch gets one now and is collected by a later run; an object
stamped or touched after the run began is kept. Each deletion holds only
while the GC fence is absent, so a fence set at any moment stops the run
before its next deletion.

Exit status: 0 done; 1 failed (etcd unreachable: nothing deleted); 2 bad
usage; 3 GC is fenced: rok-gc refused to start, or stopped (the message names
the fence's holder and reason, and the report says what was deleted before).`,
		Args: cobra.NoArgs,
	}
	root.Example = `  rok-gc --node node-1 --nodelocal-root /var/lib/rok/nodelocal       # this node's storage
  rok-gc --ca --node node-1 --local-root /var/lib/rok/local          # the shared storage, one node at a time
  rok-gc --dry-run --node node-1 --nodelocal-root /var/lib/rok/nodelocal -o json`
	f := cli.AddFlags(root, "ROK_ETCD_ENDPOINTS")
	cli.Uses(root, cli.ConnFlags, cli.StorageFlags, cli.Flag(cli.OutputFlag, cli.GWPrefixFlag))
	fl := root.Flags()
	fl.BoolVar(&ca, "ca", false, "sweep the content-addressed storage (--local-root) as the cluster's one CA instance")
	fl.BoolVar(&dryRun, "dry-run", false, "list what would be deleted; write and delete nothing")
	fl.BoolVar(&v2Epochs, "v2-epochs", false, "before the 0.14 upgrade: collect objects whose only epoch is an old v2 one")
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := f.Validate(); err != nil {
			return err
		}
		if ca && f.LocalRoot == "" {
			return cli.Usagef("--ca needs --local-root")
		}
		if !ca && f.NodelocalRoot == "" {
			return cli.Usagef("rok-gc needs --nodelocal-root (or --ca with --local-root)")
		}
		if !ca && f.Node == "" {
			return cli.Usagef("rok-gc needs --node")
		}
		if !ca {
			// The root remembers its node; a dry run only checks.
			claim := composer.ClaimRoot
			if dryRun {
				claim = composer.CheckOwner
			}
			if err := claim(f.NodelocalRoot, f.Node); errors.Is(err, composer.ErrOtherNode) {
				return &cli.UsageError{Err: err}
			}
		}
		ctx := cmd.Context()
		c, err := f.V3(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		cfg := gc.Config{
			Node: f.Node, CA: ca, DryRun: dryRun, V2Epochs: v2Epochs, GWPrefix: f.GWPrefix,
			Layout: composer.Layout{Nodelocal: f.NodelocalRoot, Local: f.LocalRoot},
		}
		if ca || v2Epochs {
			v2, err := f.V2()
			if err != nil {
				return err
			}
			cfg.V2 = conn.NewKeysAPI(v2)
		}
		// Progress starts with the run's first report, so a refused run
		// prints only its refusal.
		var p *cli.Progress
		cfg.OnProgress = func(pr gc.Progress) {
			if p == nil {
				p = cli.NewProgress("rok-gc scanned", 0)
			}
			p.Set(pr.Scanned, 0)
		}
		r, err := gc.Run(ctx, c, cfg)
		if p != nil {
			p.Finish()
		}
		if r.Epoch > 0 || r.Scanned > 0 {
			r.PeakRSSMiB = cli.PeakRSSMiB()
			if perr := f.Report(cmd.OutOrStdout(), r, func(w io.Writer) { r.Text(w) }); perr != nil && err == nil {
				err = perr
			}
		}
		return err
	}
	return root
}
