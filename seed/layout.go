package seed

import (
	"fmt"
	"path/filepath"

	"github.com/rokup/rokup/composer"
)

// Layout places the storage of every seeded node. With Dir, node X's
// nodelocal root is <Dir>/X/nodelocal and the shared local root is
// <Dir>/local; explicit roots override those (one node only for the
// nodelocal root: it is one node's storage).
type Layout struct {
	Dir           string
	NodelocalRoot string
	LocalRoot     string
}

// NodeName is the name of the i-th seeded node, from 1.
func NodeName(i int) string { return fmt.Sprintf("node-%d", i) }

// Nodes is the default node names node-1…node-k.
func Nodes(k int) []string {
	names := make([]string, k)
	for i := range names {
		names[i] = NodeName(i + 1)
	}
	return names
}

// Nodelocal is node's nodelocal root.
func (l Layout) Nodelocal(node string) string {
	if l.NodelocalRoot != "" {
		return l.NodelocalRoot
	}
	return filepath.Join(l.Dir, node, "nodelocal")
}

// Local is the shared local root.
func (l Layout) Local() string {
	if l.LocalRoot != "" {
		return l.LocalRoot
	}
	return filepath.Join(l.Dir, "local")
}

// Node is the composer layout node sees.
func (l Layout) Node(node string) composer.Layout {
	return composer.Layout{Nodelocal: l.Nodelocal(node), Local: l.Local()}
}
