package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A sidecar that can run no storage step refuses to start, naming each
// step and why, before it touches etcd; a bad --skip-steps is bad usage.
func TestSidecarWithoutUsableRootsRefusesToStart(t *testing.T) {
	nope := filepath.Join(t.TempDir(), "nope")
	code, _, errs := runRokup(t, "sidecar", "--node", "n9", "--nodelocal-root", nope, "--endpoints", "http://127.0.0.1:1")
	for _, want := range []string{"node n9 cannot run", "epochs-nodelocal", nope + " does not exist", "no local root given", "--skip-steps"} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Fatalf("sidecar without roots: exit %d, want 1 and %q in:\n%s", code, want, errs)
		}
	}
	code, _, errs = runRokup(t, "sidecar", "--node", "n9", "--skip-steps", "epochs-nodelocl")
	if code != 2 || !strings.Contains(errs, `unknown step "epochs-nodelocl"`) {
		t.Fatalf("--skip-steps with a typo: exit %d, want 2:\n%s", code, errs)
	}
}
