// Stub until its issue lands: replace this file with the real command.
package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func newSeedCmd(*cli.Flags) *cobra.Command {
	return notYet("seed", "Write a pre-0.14 installation of a chosen size", "issue 5")
}
