package main

// Commands whose issues have not landed yet. Each fails with a clear error
// (exit 1), never a fake success; the issue that fills one in replaces its
// stub with a file of its own.

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func notYet(use, short, issue string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("rokup %s is not implemented yet (%s)", cmd.Name(), issue)
		},
	}
}

func newStartCmd(*cli.Flags) *cobra.Command {
	return notYet("start", "Write the control key to start an upgrade run", "issue 7")
}
func newStatusCmd(*cli.Flags) *cobra.Command {
	return notYet("status", "Show upgrade runs and their steps", "issue 7")
}
func newAbortCmd(*cli.Flags) *cobra.Command {
	return notYet("abort", "Abort the running upgrade", "issue 7")
}
func newFenceCmd(*cli.Flags) *cobra.Command {
	return notYet("fence", "Inspect or move the GC fence", "issue 6")
}
func newBenchCmd(*cli.Flags) *cobra.Command {
	return notYet("bench", "Benchmark the upgrade side by side with a naive copier and the etcd ceiling", "issue 9")
}
func newSeedCmd(*cli.Flags) *cobra.Command {
	return notYet("seed", "Write a pre-0.14 installation of a chosen size", "issue 5")
}
