// Stub until its issue lands: replace this file with the real command.
package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func newFenceCmd(*cli.Flags) *cobra.Command {
	return notYet("fence", "Inspect or move the GC fence", "issue 6")
}
