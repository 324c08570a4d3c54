package integration

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/integration/harness"
)

// One exit rule for the four binaries: 0 success, 1 failure, 2 bad usage
// (an unknown command or flag, flags that go together, a bad --user),
// 3 fenced; credentials given to a server without auth get a warning.
func TestEveryBinaryFollowsTheExitRule(t *testing.T) {
	bin, err := harness.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	m := embed.NewTestMember(t)
	cli3 := embed.NewTestClient(t, m.Endpoints())
	ep := m.ClientURL()
	refused := "http://" + closedAddr(t)
	roots := t.TempDir()
	for _, sc := range []string{"maps-uuid", "chocks-idx", "maps-ca", "chocks-ca"} {
		if err := os.MkdirAll(filepath.Join(roots, sc), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A command of each binary that works on an empty installation.
	works := map[string][]string{
		"rokup":             {"status"},
		"rok-gw-manage":     {"showmigrations"},
		"rok-composer-tool": {"epoch-update", "--all", "--node", "n1", "--nodelocal-root", roots, "--local-root", roots},
		"rok-gc":            {"--node", "n1", "--nodelocal-root", roots},
	}
	env := &harness.Env{Bin: bin}
	run := func(name string, args ...string) (string, int) { return env.ExecEnv(nil, name, args...) }
	for name, ok := range works {
		with := func(extra ...string) []string {
			return append(append(append([]string{}, ok...), "--endpoints", ep), extra...)
		}
		for _, c := range []struct {
			what string
			args []string
			code int
			msg  string
		}{
			{"--help", []string{"--help"}, 0, "Usage:"},
			{"success", with(), 0, ""},
			{"an unknown command", []string{"strat"}, 2, `unknown command "strat"`},
			{"an unknown flag", with("--bogus"), 2, "unknown flag: --bogus"},
			{"--cert without --key", with("--cert", "c.pem"), 2, "--cert and --key go together"},
			{"a --user without a name", with("--user", ":pw"), 2, "--user must be name:password"},
			{"a --user without a password off a terminal", with("--user", "bob"), 2, `--user "bob" has no password`},
			{"credentials to a server without auth", with("--user", "bob:pw"), 0, "authentication disabled"},
			{"nothing listens", append(append([]string{}, ok...), "--endpoints", refused), 1, "connection refused"},
		} {
			out, code := run(name, c.args...)
			if code != c.code || !strings.Contains(out, c.msg) {
				t.Errorf("%s, %s: exit %d, want %d and %q:\n%s", name, c.what, code, c.code, c.msg, out)
			}
		}
	}
	if _, err := fencing.NewFence(cli3).Set(context.Background(), "ops", "maintenance"); err != nil {
		t.Fatal(err)
	}
	if out, code := run("rok-gc", append(works["rok-gc"], "--endpoints", ep)...); code != 3 || !strings.Contains(out, `"ops"`) {
		t.Errorf("rok-gc while fenced: exit %d, want 3 naming the holder:\n%s", code, out)
	}
}

func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
