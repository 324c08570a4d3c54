package main

import (
	"os"
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
	// A root seeded for node-1 (its marker names it) is not node-2's.
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, ".rok-node"), []byte("node-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runRokup(t, "sidecar", "--node", "node-2", "--nodelocal-root", root, "--endpoints", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(errs, `belongs to node "node-1"`) {
		t.Fatalf("sidecar on another node's root: exit %d, want 2 naming node-1:\n%s", code, errs)
	}
	code, _, errs = runRokup(t, "sidecar", "--node", "n9", "--skip-steps", "epochs-nodelocl")
	if code != 2 || !strings.Contains(errs, `unknown step "epochs-nodelocl"`) {
		t.Fatalf("--skip-steps with a typo: exit %d, want 2:\n%s", code, errs)
	}
}

func TestSidecarPeerTLSFlagsGoTogether(t *testing.T) {
	roots := t.TempDir()
	for _, d := range []string{"maps-uuid", "chocks-idx", "maps-ca", "chocks-ca"} {
		if err := os.MkdirAll(filepath.Join(roots, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	code, _, errs := runRokup(t, "sidecar", "--node", "n1", "--nodelocal-root", roots, "--local-root", roots,
		"--embed", "--data-dir", t.TempDir(), "--embed-peer-trusted-ca", "ca.pem")
	if code != 2 || !strings.Contains(errs, "--embed-peer-cert and --embed-peer-key go together") {
		t.Fatalf("peer TLS without the member's certificate: exit %d, want 2:\n%s", code, errs)
	}
}
