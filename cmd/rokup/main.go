package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func main() { cli.Execute(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "rokup",
		Short: "Upgrade a live Rok cluster to 0.14: etcd v2 → v3, with GC fenced and nothing lost",
	}
	f := cli.AddFlags(root, "ROK_ETCD_ENDPOINTS")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return f.Validate() }
	root.AddCommand(
		newVersionCmd(f),
		newSidecarCmd(f),
		newStartCmd(f),
		newStatusCmd(f),
		newAbortCmd(f),
		newFenceCmd(f),
		newDemoCmd(f),
		newBenchCmd(f),
		newSeedCmd(f),
		newRehearseCmd(f),
	)
	return root
}
