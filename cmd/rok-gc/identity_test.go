package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A nodelocal root whose marker names another node is refused before
// anything is read or deleted; on first use the root gets its marker.
func TestAnotherNodesRootIsRefused(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, ".rok-node"), []byte("node-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := rokGC(t, "--endpoints", "http://127.0.0.1:1", "--node", "vm-host", "--nodelocal-root", root)
	if code != 2 || !strings.Contains(errs, `belongs to node "node-1"`) {
		t.Fatalf("exit %d, want 2 naming node-1:\n%s", code, errs)
	}
}
