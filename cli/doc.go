// Package cli is what every rokup command line shares: the connection and
// storage flags (docs/design.md#command-lines), one error path that turns an
// error into a message and an exit status, text or JSON output, and progress
// that is a bar on a terminal and plain periodic lines elsewhere.
package cli
