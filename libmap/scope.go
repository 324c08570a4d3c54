package libmap

import (
	"errors"
	"fmt"
	"strings"
)

// Scope is one kind of object on storage.
type Scope string

// The four scopes (docs/design.md#storage).
const (
	MapsUUID  Scope = "maps-uuid"  // nodelocal, mutable maps
	ChocksIdx Scope = "chocks-idx" // nodelocal, mutable chocks
	MapsCA    Scope = "maps-ca"    // local, immutable, content-addressed maps
	ChocksCA  Scope = "chocks-ca"  // local, immutable, content-addressed chocks
)

// ErrUnknownScope is returned for a scope name that is not one of Scopes.
var ErrUnknownScope = errors.New("libmap: unknown scope")

// Scopes lists every scope, nodelocal first, in the order the guide stamps
// them.
func Scopes() []Scope { return []Scope{MapsUUID, ChocksIdx, MapsCA, ChocksCA} }

// NodelocalScopes are the scopes stamped on every node.
func NodelocalScopes() []Scope { return []Scope{MapsUUID, ChocksIdx} }

// CAScopes are the content-addressed scopes, stamped once on the master.
func CAScopes() []Scope { return []Scope{MapsCA, ChocksCA} }

// ParseScope returns the scope named s; the error lists the valid names.
func ParseScope(s string) (Scope, error) {
	for _, sc := range Scopes() {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("%w %q (valid scopes: %s)", ErrUnknownScope, s, ValidScopes())
}

// ParseScopes parses several names, dropping duplicates and keeping order.
func ParseScopes(names []string) ([]Scope, error) {
	var out []Scope
	seen := map[Scope]bool{}
	for _, n := range names {
		sc, err := ParseScope(n)
		if err != nil {
			return nil, err
		}
		if !seen[sc] {
			seen[sc] = true
			out = append(out, sc)
		}
	}
	return out, nil
}

// ValidScopes is the list of scope names for messages.
func ValidScopes() string { return JoinScopes(Scopes(), ", ") }

// JoinScopes joins the names of scopes with sep, for messages.
func JoinScopes(scopes []Scope, sep string) string {
	names := make([]string, len(scopes))
	for i, sc := range scopes {
		names[i] = string(sc)
	}
	return strings.Join(names, sep)
}

// Valid reports whether s is one of the four scopes.
func (s Scope) Valid() bool {
	_, err := ParseScope(string(s))
	return err == nil
}

// Nodelocal reports whether objects of s live on one node, so that their
// ids are qualified by the node's name (chock indexes repeat across nodes).
func (s Scope) Nodelocal() bool { return s == MapsUUID || s == ChocksIdx }

// IsMap reports whether objects of s are maps (they reference chocks).
func (s Scope) IsMap() bool { return s == MapsUUID || s == MapsCA }

// ID is the id of an object in the epoch cache: "<node>/<name>" for the
// nodelocal scopes, the name (the hash) for the content-addressed ones.
func (s Scope) ID(node, name string) string {
	if s.Nodelocal() {
		return node + "/" + name
	}
	return name
}

// SplitID is the inverse of ID: the node ("" for CA scopes) and the name.
func (s Scope) SplitID(id string) (node, name string) {
	if s.Nodelocal() {
		if i := strings.IndexByte(id, '/'); i >= 0 {
			return id[:i], id[i+1:]
		}
	}
	return "", id
}

func (s Scope) String() string { return string(s) }
