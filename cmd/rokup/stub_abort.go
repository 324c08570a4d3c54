// Stub until its issue lands: replace this file with the real command.
package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func newAbortCmd(*cli.Flags) *cobra.Command {
	return notYet("abort", "Abort the running upgrade", "issue 7")
}
