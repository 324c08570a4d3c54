// Command rok-gc is Rok's garbage collector: fenced, epoch-aware mark and
// sweep of the maps and chocks on storage (SPEC §5).
package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func main() { cli.Execute(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "rok-gc",
		Short: "Collect unreachable maps and chocks, never while GC is fenced",
		Args:  cobra.NoArgs,
	}
	f := cli.AddFlags(root, "ROK_ETCD_ENDPOINTS")
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := f.Validate(); err != nil {
			return err
		}
		cli, err := f.V3(cmd.Context())
		if err != nil {
			return err
		}
		defer cli.Close()
		return fmt.Errorf("rok-gc is not implemented yet (issue 6)")
	}
	return root
}
