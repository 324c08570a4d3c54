package main

import (
	"fmt"
	"io"
	"runtime"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/version"

	"github.com/rokup/rokup/cli"
)

// Version is rokup's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

func newVersionCmd(f *cli.Flags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of rokup, its embedded etcd server and Go",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]string{"rokup": Version, "etcd": version.Version, "go": runtime.Version()}
			return f.Report(cmd.OutOrStdout(), v, func(w io.Writer) {
				fmt.Fprintf(w, "rokup %s\netcd server %s (embedded; v2 API enabled)\n%s\n", Version, version.Version, runtime.Version())
			})
		},
	}
	cli.Uses(cmd, cli.Flag(cli.OutputFlag))
	return cmd
}
