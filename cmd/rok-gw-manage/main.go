// Command rok-gw-manage manages the Rok Gateway's store: its Django-style
// migrations, including the move from the etcd v2 store to v3 (SPEC §7).
package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func main() { cli.Execute(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "rok-gw-manage",
		Short: "Manage the Rok Gateway's store and its migrations",
	}
	cli.AddFlags(root, "ROK_ETCD_ENDPOINTS")
	for _, name := range []string{"migrate", "showmigrations", "republish"} {
		root.AddCommand(&cobra.Command{
			Use: name,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return fmt.Errorf("rok-gw-manage %s is not implemented yet (issue 4)", cmd.Name())
			},
		})
	}
	return root
}
