package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/gateway"
)

func newRepublishCmd(f *cli.Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "republish [BUCKET...]",
		Short: "Re-publish buckets: sync from the current v3 revision again",
		Long: `Set "sync_revision" to the current v3 revision and "syncing": true on the
named published buckets (every published bucket when none is named). Run it
after the move: the v3 revision may be behind the v2 index the buckets
synced from.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c3, _, err := stores(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer c3.Close()
			rep, err := gateway.Republish(cmd.Context(), c3, args, gateway.BucketsOptions{Prefix: f.GWPrefix})
			if err != nil {
				return err
			}
			return f.Report(cmd.OutOrStdout(), rep, func(w io.Writer) {
				fmt.Fprintf(w, "Republished %d buckets at v3 revision %d\n", rep.Changed, rep.Revision)
				for _, b := range rep.Published {
					fmt.Fprintf(w, "  %s\n", b)
				}
				for _, b := range rep.Invalid {
					fmt.Fprintf(w, "  not valid JSON (untouched): %s\n", b)
				}
			})
		},
	}
	cmd.Example = `  rok-gw-manage republish                      # every published bucket
  rok-gw-manage republish bucket-0003 -o json  # one bucket, for scripts`
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag, cli.GWPrefixFlag))
	return cmd
}
