package seed

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"sync"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

// ManifestFormat is the version of the generator a manifest's objects are
// regenerated with: ReadManifest refuses another, whose objects would not
// be the ones on storage.
const ManifestFormat = 2

// ErrManifestFormat is returned for a manifest written by a rokup whose
// seed generates other objects.
var ErrManifestFormat = errors.New("seed: manifest from another rokup version (seed again)")

// Object is one valid map or chock on storage.
type Object struct {
	Scope     libmap.Scope `json:"scope"`
	Node      string       `json:"node,omitempty"` // nodelocal scopes only
	Name      string       `json:"name"`           // uuid, index or hash
	Path      string       `json:"path"`
	Reachable bool         `json:"reachable"`
}

// ID is the object's id in the epoch cache.
func (o Object) ID() string { return o.Scope.ID(o.Node, o.Name) }

// Bad is an invalid entry the seed planted: it must never be deleted, nor
// stamped, but for a malformed map, which an update that does not read
// maps stamps (StampedUnread).
type Bad struct {
	Scope  libmap.Scope    `json:"scope"`
	Node   string          `json:"node,omitempty"`
	Path   string          `json:"path"`
	Reason composer.Reason `json:"reason"`
}

// ID is the entry's id in the epoch cache, were it stamped.
func (b Bad) ID() string { return b.Scope.ID(b.Node, filepath.Base(b.Path)) }

// Manifest is what a seed wrote. It does not list the objects: Objects
// regenerates them from the seed, the sizes and the roots, the way Run
// wrote them, so neither the seed nor a reader of the manifest holds 10
// million objects in memory (nor a JSON file of gigabytes on disk).
type Manifest struct {
	Format    int      `json:"format"`
	Seed      int64    `json:"seed"`
	Nodes     []string `json:"nodes"`
	GWPrefix  string   `json:"gw_prefix"`
	V2Epochs  string   `json:"v2_epochs"`
	LocalRoot string   `json:"local_root"`
	// NodelocalRoots maps each node to its nodelocal root.
	NodelocalRoots map[string]string `json:"nodelocal_roots"`

	Docs      int      `json:"docs"`       // v2 leaves under the prefix, hidden ones excluded
	TTLDocs   int      `json:"ttl_docs"`   // of which with a TTL
	Buckets   []string `json:"buckets"`    // bucket document keys
	Published []string `json:"published"`  // bucket document keys with "published": true
	Versions  int      `json:"versions"`   // version documents; each names maps-ca j, j < Versions
	Hidden    []string `json:"hidden"`     // hidden keys (read them by name)
	EmptyDirs []string `json:"empty_dirs"` // empty v2 directories

	// V2EpochKeys is how many objects have a key in the v2 epoch cache:
	// every V2EpochEvery-th in Objects order, from the first. It is 1 (all
	// of them) up to Config.V2EpochMax objects; above, the cache holds a
	// sample (see DefaultV2EpochMax).
	V2EpochKeys  int `json:"v2_epoch_keys"`
	V2EpochEvery int `json:"v2_epoch_every"`

	Total int   `json:"objects"` // valid objects; Objects yields them
	Bad   []Bad `json:"bad"`
	// MissingChocks are map → chock references to chocks not on storage.
	MissingChocks []string `json:"missing_chocks"`

	once     sync.Once
	sections []*section
	listed   []Object // ManifestOf's objects, instead of regenerated ones
}

// ManifestOf is a manifest of explicit objects and bad entries, to check
// a hand-made tree with the same code that checks a seeded one. It cannot
// be written: only a seeded manifest regenerates its objects.
func ManifestOf(objects []Object, bad []Bad) *Manifest {
	return &Manifest{Format: ManifestFormat, Total: len(objects), Bad: bad, listed: objects, V2EpochEvery: 1}
}

// Objects yields every valid object in a fixed order (content-addressed
// chocks, their maps, then each node's chocks and maps), computing each as
// it goes: nothing per object is held.
func (m *Manifest) Objects() iter.Seq[Object] {
	return func(yield func(Object) bool) {
		if m.listed != nil {
			for _, o := range m.listed {
				if !yield(o) {
					return
				}
			}
			return
		}
		for _, s := range m.plan() {
			for i := 0; i < s.n; i++ {
				if o, _ := s.item(i); !yield(o) {
					return
				}
			}
		}
	}
}

// StampedUnread returns the bad entries an epoch update that does not read
// maps stamps as objects (composer.Reason.InContent: malformed maps).
func (m *Manifest) StampedUnread() []Bad {
	var bs []Bad
	for _, b := range m.Bad {
		if b.Reason.InContent() {
			bs = append(bs, b)
		}
	}
	return bs
}

// Count returns the valid objects of scope (of node, if given).
func (m *Manifest) Count(scope libmap.Scope, node string) int {
	n := 0
	if m.listed != nil {
		for _, o := range m.listed {
			if o.Scope == scope && (node == "" || o.Node == node) {
				n++
			}
		}
		return n
	}
	for _, s := range m.plan() {
		if s.scope == scope && (node == "" || s.node == node) {
			n += s.n
		}
	}
	return n
}

// Reachable returns how many valid objects the roots reach; the others
// are garbage.
func (m *Manifest) Reachable() int {
	n := 0
	if m.listed != nil {
		for _, o := range m.listed {
			if o.Reachable {
				n++
			}
		}
		return n
	}
	for _, s := range m.plan() {
		n += s.reachable()
	}
	return n
}

// HasV2Epoch reports whether the i-th object (in Objects order) has a key
// in the v2 epoch cache.
func (m *Manifest) HasV2Epoch(i int) bool {
	return m.V2EpochEvery > 0 && i%m.V2EpochEvery == 0 && i/m.V2EpochEvery < m.V2EpochKeys
}

// object is the i-th object in Objects order, and its file's content.
func (m *Manifest) object(i int) (Object, []byte) {
	for _, s := range m.plan() {
		if i < s.first+s.n {
			return s.item(i - s.first)
		}
	}
	panic(fmt.Sprintf("seed: object %d of %d", i, m.Total))
}

// section is scope's (and node's) section.
func (m *Manifest) section(scope libmap.Scope, node string) *section {
	for _, s := range m.plan() {
		if s.scope == scope && s.node == node {
			return s
		}
	}
	panic("seed: no section " + string(scope) + " " + node)
}

// plan lays out the sections once, with the reachable chocks of each.
func (m *Manifest) plan() []*section {
	m.once.Do(func() { m.sections = sections(m) })
	return m.sections
}

// WriteFile writes the manifest as JSON.
func (m *Manifest) WriteFile(path string) error {
	if m.listed != nil {
		return errors.New("seed: a manifest of listed objects cannot be written")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// ReadManifest reads a manifest written by WriteFile.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("seed: manifest %s: %w", path, err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%w: %s has format %d, this one reads %d", ErrManifestFormat, path, m.Format, ManifestFormat)
	}
	return &m, nil
}
