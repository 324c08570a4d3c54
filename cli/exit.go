package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
)

// Exit statuses of every rokup command.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
	// ExitFenced means the work refused or stopped because GC is fenced.
	ExitFenced = 3
)

// UsageError marks an error as bad usage (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a usage error.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError carries a chosen exit status with an error, for commands whose
// status means something other than failure (migrate --check exits 1
// while migrations are unapplied, with no error to print).
type ExitError struct {
	Code int
	Err  error // may be nil: nothing to print
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error to its exit status (docs/design.md#command-lines).
func ExitCode(err error) int {
	var ee *ExitError
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.As(err, &ue), errors.Is(err, conn.ErrConfig):
		return ExitUsage
	case errors.Is(err, fencing.ErrFenced):
		return ExitFenced
	default:
		return ExitFailed
	}
}

// Execute runs a root command and exits the process with the status of its
// error. Flag errors are usage errors; the message goes to stderr once.
func Execute(root *cobra.Command) {
	os.Exit(Run(root, os.Args[1:], os.Stderr))
}

// Run is Execute without the exit, for tests.
func Run(root *cobra.Command, args []string, stderr io.Writer) int {
	Prepare(root)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Err != nil {
			fmt.Fprintf(stderr, "%s: error: %v\n", root.Name(), err)
		}
	}
	return ExitCode(err)
}

// Prepare sets the error behaviour on a command tree: cobra prints nothing
// itself, flag and argument errors become usage errors.
func Prepare(root *cobra.Command) {
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Err: fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	wrapArgs(root)
	prepareHelp(root)
}

// wrapArgs makes positional-argument errors usage errors, in every command.
func wrapArgs(c *cobra.Command) {
	if c.HasSubCommands() && c.Args == nil {
		// Without Args, cobra reports an unknown subcommand itself, as a
		// plain error (exit 1); here it is bad usage, with suggestions.
		c.Args = unknownCommand
	}
	if c.Args != nil {
		orig := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				return &UsageError{Err: fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath())}
			}
			return nil
		}
	}
	if c.HasSubCommands() && c.RunE == nil && c.Run == nil {
		// A bare group command is a usage error, not a silent success.
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return Usagef("unknown command %q for %s", args[0], cmd.CommandPath())
			}
			return Usagef("%s needs a subcommand (see %s --help)", cmd.CommandPath(), cmd.CommandPath())
		}
	}
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if sugg := cmd.SuggestionsFor(args[0]); len(sugg) > 0 {
		msg += fmt.Sprintf("; did you mean %s?", strings.Join(sugg, " or "))
	}
	return errors.New(msg)
}
