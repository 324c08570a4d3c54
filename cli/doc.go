// Package cli is what every rokup command line shares: the connection and
// storage flags (docs/design.md#command-lines), one error path that turns an
// error into a message and an exit status, text or JSON output, and progress
// that is a bar on a terminal and plain periodic lines elsewhere.
//
// Start here: AddFlags (flags.go) puts the shared flags on a root command
// and returns Flags, whose V3 and V2 dial through package conn; Uses
// (help.go) says which of them a command shows. Execute (exit.go) runs a
// root command and exits with ExitCode's status: 0, 1 on failure, 2 on
// bad usage (UsageError), 3 when GC is fenced. Flags.Report and Progress
// (output.go) print a result as text or JSON and long work as a bar or
// plain lines.
package cli
