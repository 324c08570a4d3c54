package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func main() { cli.Execute(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "rok-composer-tool",
		Short: "Maintain the composer's maps and chocks",
	}
	// The upgrade guide points this tool at $ROK_COMPOSER_ETCD_ENDPOINT.
	f := cli.AddFlags(root, "ROK_COMPOSER_ETCD_ENDPOINT", "ROK_ETCD_ENDPOINTS")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return f.Validate() }
	root.AddCommand(newEpochUpdateCmd(f))
	return root
}
