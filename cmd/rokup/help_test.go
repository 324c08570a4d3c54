package main

import (
	"strings"
	"testing"
)

// Every command an operator types has examples in its help, and shows no
// storage flag it does not read.
func TestOperatorCommandsHaveExamples(t *testing.T) {
	for _, c := range []struct {
		args    []string
		without []string
	}{
		{[]string{"sidecar"}, nil},
		{[]string{"start"}, []string{"--nodelocal-root", "--local-root", "--node "}},
		{[]string{"status"}, []string{"--nodelocal-root", "--gw-prefix", "--node "}},
		{[]string{"abort"}, []string{"--nodelocal-root", "--gw-prefix", "--node "}},
		{[]string{"bench"}, []string{"--nodelocal-root", "--gw-prefix"}},
		{[]string{"seed"}, nil},
		{[]string{"demo"}, []string{"--endpoints", "--cacert", "--nodelocal-root", "--gw-prefix"}},
		{[]string{"fence", "release"}, []string{"--nodelocal-root", "--gw-prefix"}},
	} {
		code, out, _ := runRokup(t, append(c.args, "--help")...)
		if code != 0 || !strings.Contains(out, "Examples:\n  rokup "+c.args[0]) {
			t.Errorf("rokup %v --help: exit %d, no examples:\n%s", c.args, code, out)
		}
		for _, w := range c.without {
			if strings.Contains(out, w) {
				t.Errorf("rokup %v --help shows %s", c.args, w)
			}
		}
	}
}
