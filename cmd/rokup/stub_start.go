// Stub until its issue lands: replace this file with the real command.
package main

import (
	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

func newStartCmd(*cli.Flags) *cobra.Command {
	return notYet("start", "Write the control key to start an upgrade run", "issue 7")
}
