package main

// Commands whose issues have not landed yet. Each fails with a clear error
// (exit 1), never a fake success; the issue that fills one in replaces its
// stub with a file of its own.

import (
	"fmt"

	"github.com/spf13/cobra"
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
