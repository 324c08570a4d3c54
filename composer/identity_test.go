package composer_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rokup/rokup/composer"
)

func TestANodelocalRootRemembersItsNode(t *testing.T) {
	root := t.TempDir()
	if owner, err := composer.RootOwner(root); err != nil || owner != "" {
		t.Fatalf("a new root: owner %q, %v", owner, err)
	}
	if err := composer.ClaimRoot(root, "node-1"); err != nil {
		t.Fatal(err)
	}
	if owner, err := composer.RootOwner(root); err != nil || owner != "node-1" {
		t.Fatalf("after the first use: owner %q, %v", owner, err)
	}
	if err := composer.ClaimRoot(root, "node-1"); err != nil {
		t.Fatalf("the same node again: %v", err)
	}
	err := composer.ClaimRoot(root, "vm-host")
	if !errors.Is(err, composer.ErrOtherNode) || !strings.Contains(err.Error(), `belongs to node "node-1"`) {
		t.Fatalf("another node: %v; want ErrOtherNode naming node-1", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, composer.NodeMarker)); string(b) != "node-1\n" {
		t.Fatalf("the marker changed: %q", b)
	}
}
