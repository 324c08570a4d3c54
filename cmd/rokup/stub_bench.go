// Stub until its issue lands: replace this file with the real command.
package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func newBenchCmd(*cli.Flags) *cobra.Command {
	return notYet("bench", "Benchmark the upgrade side by side with a naive copier and the etcd ceiling", "issue 9")
}
