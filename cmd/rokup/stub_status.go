// Stub until its issue lands: replace this file with the real command.
package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func newStatusCmd(*cli.Flags) *cobra.Command {
	return notYet("status", "Show upgrade runs and their steps", "issue 7")
}
