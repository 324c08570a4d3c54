package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
)

// A command that declares the shared flags it uses shows only those, its
// storage flags among its own, and refuses the others.
func TestHelpShowsOnlyTheFlagsACommandUses(t *testing.T) {
	build := func() *cobra.Command {
		root := &cobra.Command{Use: "tool"}
		cli.AddFlags(root, "ROK_ETCD_ENDPOINTS")
		demo := &cobra.Command{Use: "demo", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return nil }}
		cli.Uses(demo, cli.Flag(cli.OutputFlag))
		gc := &cobra.Command{Use: "gc", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return nil }}
		cli.Uses(gc, cli.ConnFlags, cli.StorageFlags)
		root.AddCommand(demo, gc)
		return root
	}
	help := func(args ...string) string {
		root := build()
		var out bytes.Buffer
		root.SetOut(&out)
		if code := cli.Run(root, append(args, "--help"), &out); code != 0 {
			t.Fatalf("%v --help: exit %d", args, code)
		}
		return out.String()
	}
	demo := help("demo")
	for _, absent := range []string{"--endpoints", "--nodelocal-root", "--gw-prefix", "--node"} {
		if strings.Contains(demo, absent) {
			t.Errorf("demo --help shows %s:\n%s", absent, demo)
		}
	}
	if !strings.Contains(demo, "--output") {
		t.Errorf("demo --help lacks --output:\n%s", demo)
	}
	gc := help("gc")
	own, connSection, _ := strings.Cut(gc, "Connection and output flags:")
	if !strings.Contains(own, "--nodelocal-root") || !strings.Contains(own, "--node ") || strings.Contains(gc, "--gw-prefix") || strings.Contains(gc, "--output") {
		t.Errorf("gc --help: want the storage flags among its own, no --gw-prefix or --output:\n%s", gc)
	}
	if !strings.Contains(connSection, "--endpoints") || !strings.Contains(connSection, "--password") {
		t.Errorf("gc --help: want the connection flags:\n%s", gc)
	}
	var stderr bytes.Buffer
	if code := cli.Run(build(), []string{"demo", "--endpoints", "http://x:2379"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "does not take --endpoints") {
		t.Errorf("demo --endpoints: exit %d, %q; want 2", code, stderr.String())
	}
}
