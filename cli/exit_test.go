package cli_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
)

// tree is a small command tree with the shared flags: a group with one
// subcommand, and a leaf that validates the flags and returns err.
func tree(err error) (*cobra.Command, *cli.Flags) {
	root := &cobra.Command{Use: "tool"}
	f := cli.AddFlags(root, "ROK_ETCD_ENDPOINTS")
	root.PersistentPreRunE = func(*cobra.Command, []string) error { return f.Validate() }
	group := &cobra.Command{Use: "fence"}
	group.AddCommand(&cobra.Command{Use: "status", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return err }})
	root.AddCommand(group, &cobra.Command{Use: "start", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return err }})
	return root, f
}

func TestOneExitRule(t *testing.T) {
	defer func(i func() bool) { cli.IsTerminal = i }(cli.IsTerminal)
	cli.IsTerminal = func() bool { return false }
	for _, c := range []struct {
		name string
		args []string
		err  error
		code int
		msg  string
	}{
		{"success", []string{"start"}, nil, 0, ""},
		{"failure", []string{"start"}, fmt.Errorf("boom"), 1, "boom"},
		{"fenced", []string{"start"}, fmt.Errorf("stopped: %w", fencing.ErrFenced), 3, "fenced"},
		{"bad connection settings from conn", []string{"start"}, fmt.Errorf("%w: no endpoints", conn.ErrConfig), 2, "no endpoints"},
		{"an unknown command", []string{"strat"}, nil, 2, `unknown command "strat" for "tool"; did you mean start?`},
		{"an unknown subcommand", []string{"fence", "stauts"}, nil, 2, `unknown command "stauts" for "tool fence"`},
		{"a group without its subcommand", []string{"fence"}, nil, 2, "needs a subcommand"},
		{"an unknown flag", []string{"start", "--bogus"}, nil, 2, "unknown flag: --bogus"},
		{"an extra argument", []string{"start", "x"}, nil, 2, "unknown command"},
		{"--cert without --key", []string{"start", "--cert", "c.pem"}, nil, 2, "--cert and --key go together"},
		{"--key without --cert", []string{"start", "--key", "k.pem"}, nil, 2, "--cert and --key go together"},
		{"--user without a password off a terminal", []string{"start", "--user", "bob"}, nil, 2, `--user "bob" has no password`},
		{"--password without --user", []string{"start", "--password", "pw"}, nil, 2, "--password needs --user"},
		{"-o of an unknown format", []string{"start", "-o", "yaml"}, nil, 2, "-o must be text or json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, _ := tree(c.err)
			var stderr bytes.Buffer
			code := cli.Run(root, c.args, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), c.code, c.msg)
			}
		})
	}
}

func TestUserWithoutPasswordAsksOnATerminal(t *testing.T) {
	defer func(i func() bool, r func(string) (string, error)) { cli.IsTerminal, cli.ReadPassword = i, r }(cli.IsTerminal, cli.ReadPassword)
	cli.IsTerminal = func() bool { return true }
	var asked string
	cli.ReadPassword = func(prompt string) (string, error) { asked = prompt; return "s3cret", nil }
	root, f := tree(nil)
	if code := cli.Run(root, []string{"start", "--user", "bob"}, &bytes.Buffer{}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(asked, "bob") || f.Conn().User != "bob" || f.Conn().Password != "s3cret" {
		t.Fatalf("asked %q, config %+v", asked, f.Conn())
	}
	// --password and name:password are taken as given, without asking.
	for _, args := range [][]string{{"start", "--user", "bob", "--password", "pw"}, {"start", "--user", "bob:pw"}} {
		asked = ""
		root, _ := tree(nil)
		if code := cli.Run(root, args, &bytes.Buffer{}); code != 0 || asked != "" {
			t.Fatalf("%v: exit %d, asked %q", args, code, asked)
		}
	}
}
