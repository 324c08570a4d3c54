package composer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NodeMarker is the file in a nodelocal root that names the node whose
// storage it is. Nodelocal ids are qualified by the node (<node>/<uuid>),
// so stamping a root under another node's name would give its objects
// epochs GC never looks up: the marker makes that mistake an error.
const NodeMarker = ".rok-node"

// ErrOtherNode is returned when a nodelocal root belongs to another node.
var ErrOtherNode = errors.New("composer: the nodelocal root belongs to another node")

// RootOwner returns the node a nodelocal root belongs to, "" when it has
// no marker yet.
func RootOwner(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, NodeMarker))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("composer: read %s: %w", filepath.Join(root, NodeMarker), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// CheckOwner fails with ErrOtherNode, naming the owner, when root's marker
// names a node other than node.
func CheckOwner(root, node string) error {
	owner, err := RootOwner(root)
	if err != nil {
		return err
	}
	if owner != "" && owner != node {
		return fmt.Errorf("%w: %s belongs to node %q (its %s), not %q: run with --node %s, or give this node's own root",
			ErrOtherNode, root, owner, NodeMarker, node, owner)
	}
	return nil
}

// ClaimRoot checks root's marker and, on first use, writes it naming node.
// A root that cannot be written (a read-only mount) is left unmarked: the
// check is a safety net, not a reason to fail.
func ClaimRoot(root, node string) error {
	if err := CheckOwner(root, node); err != nil {
		return err
	}
	path := filepath.Join(root, NodeMarker)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(node+"\n"), 0o644); err != nil {
		return nil
	}
	// Link, not rename: of two nodes claiming at once, one wins and the
	// other sees its marker.
	err := os.Link(tmp, path)
	os.Remove(tmp)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return nil
	}
	return CheckOwner(root, node)
}
