package seed

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

// Every object and document is a pure function of the seed, its scope (and
// node) and its index, drawn from a generator of its own: a seed of any
// size holds nothing per object, writes them in any order, and a manifest
// regenerates them instead of listing them. Only which chocks are
// reachable needs a pass over the maps; it is kept as one bit per chock.

// section is a run of objects of one scope (one node's, for the nodelocal
// scopes), in the order Manifest.Objects yields them.
type section struct {
	scope  libmap.Scope
	node   string
	layout composer.Layout
	seed   int64
	stream uint64 // the section's generators, from its scope and node
	first  int    // index of its first object in Objects order
	n      int

	chocks    int    // maps: the chocks of their root, which they reference
	reachMaps int    // maps: the first reachMaps are reachable
	missing   bool   // maps-uuid: map 0 also names a chock not on storage
	reach     bitset // chocks: those a reachable map references
}

// sections lays out m's objects: half content-addressed and shared, the
// other half spread over the nodes; in each root one map in five objects.
// A maps-ca is reachable when a Gateway version names it (the first
// m.Versions); every maps-uuid is a live volume.
func sections(m *Manifest) []*section {
	var out []*section
	add := func(maps, chocks *section) {
		maps.chocks = chocks.n
		chocks.reach = maps.reachedChocks()
		chocks.first = m.countSoFar(out)
		out = append(out, chocks)
		maps.first = m.countSoFar(out)
		out = append(out, maps)
	}
	caN := m.Total / 2
	nlN := m.Total - caN
	local := composer.Layout{Local: m.LocalRoot}
	nMaps, nChocks := split(caN)
	add(newSection(m, libmap.MapsCA, "", local, nMaps, min(m.Versions, nMaps)),
		newSection(m, libmap.ChocksCA, "", local, nChocks, 0))
	for i, node := range m.Nodes {
		n := nlN / len(m.Nodes)
		if i < nlN%len(m.Nodes) {
			n++
		}
		l := composer.Layout{Nodelocal: m.NodelocalRoots[node]}
		nMaps, nChocks := split(n)
		maps := newSection(m, libmap.MapsUUID, node, l, nMaps, nMaps)
		maps.missing = true
		add(maps, newSection(m, libmap.ChocksIdx, node, l, nChocks, 0))
	}
	return out
}

func (m *Manifest) countSoFar(secs []*section) int {
	n := 0
	for _, s := range secs {
		n += s.n
	}
	return n
}

func newSection(m *Manifest, scope libmap.Scope, node string, l composer.Layout, n, reachMaps int) *section {
	h := fnv.New64a()
	h.Write([]byte(string(scope) + "/" + node))
	return &section{scope: scope, node: node, layout: l, seed: m.Seed, stream: h.Sum64(), n: n, reachMaps: reachMaps}
}

// split is how many maps and chocks n objects hold: one map in five.
func split(n int) (maps, chocks int) {
	maps = n / 5
	if maps == 0 && n >= 2 {
		maps = 1
	}
	return maps, n - maps
}

// item is the section's i-th object and its file's content.
func (s *section) item(i int) (Object, []byte) {
	o := Object{Scope: s.scope, Node: s.node}
	var content []byte
	switch s.scope {
	case libmap.ChocksCA:
		// A chock's name is the sha256 of its content, as in Rok.
		content = caChock(s.seed, i)
		o.Name, o.Reachable = sum(content), s.reach.has(i)
	case libmap.ChocksIdx:
		content = fmt.Appendf(nil, "chock-idx node=%s seed=%d i=%d\n", s.node, s.seed, i)
		o.Name, o.Reachable = strconv.Itoa(i), s.reach.has(i)
	case libmap.MapsCA:
		_, refs := s.draw(i)
		for _, c := range refs {
			content = fmt.Appendf(content, "chocks-ca/%s\n", sum(caChock(s.seed, c)))
		}
		o.Name, o.Reachable = sum(content), i < s.reachMaps
	case libmap.MapsUUID:
		var refs []int
		o.Name, refs = s.draw(i)
		for _, c := range refs {
			content = fmt.Appendf(content, "chocks-idx/%d\n", c)
		}
		if i == 0 && s.missing && s.chocks > 0 {
			// One live volume names a chock that is gone: it must be
			// reported, and the map still stamped.
			content = fmt.Appendf(content, "chocks-idx/%d\n", s.chocks+1000)
		}
		o.Reachable = true
	}
	o.Path = s.layout.Path(s.scope, o.Name)
	return o, content
}

// draw is map j's uuid (maps-uuid) and the chocks it references, from
// map j's own generator.
func (s *section) draw(j int) (id string, refs []int) {
	r := rand.New(rand.NewPCG(uint64(s.seed), mix(s.stream^uint64(j))))
	if s.scope == libmap.MapsUUID {
		id = uuid(r)
	}
	pool := s.chocks - s.chocks/5 // the rest, a fifth, is garbage nobody references
	if pool == 0 {
		return id, nil
	}
	refs = make([]int, 1+r.IntN(6))
	// The first is chock j: there are never more maps than pool chocks
	// (a fifth of the objects against 64 %), so no two maps-ca have the
	// same content, hence the same name, without a set of every map seen.
	refs[0] = j % pool
	for k := 1; k < len(refs); k++ {
		refs[k] = r.IntN(pool)
	}
	return id, refs
}

// reachedChocks marks the chocks the reachable maps reference.
func (s *section) reachedChocks() bitset {
	b := newBitset(s.chocks)
	for j := 0; j < s.reachMaps; j++ {
		_, refs := s.draw(j)
		for _, c := range refs {
			b.set(c)
		}
	}
	return b
}

// reachable is how many of the section's objects are reachable.
func (s *section) reachable() int {
	if s.scope.IsMap() {
		return s.reachMaps
	}
	return s.reach.count()
}

func caChock(seed int64, i int) []byte {
	return fmt.Appendf(nil, "chock-ca seed=%d i=%d\n", seed, i)
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// mix is splitmix64's finalizer: neighbouring indexes seed unrelated
// generators.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// uuid is a random (version 4) UUID from r, in canonical lower case.
func uuid(r *rand.Rand) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], r.Uint64())
	binary.LittleEndian.PutUint64(b[8:], r.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// bitset is one bit per index.
type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// docs is the Gateway documents, in write order: one bucket per hundred
// documents (every third published), a version per reachable maps-ca (up
// to a quarter of the documents), and plain documents in nested folders,
// one in twenty with a TTL; then the hidden ledger entry and one empty
// folder.
type docs struct {
	gw                string
	seed              int64
	valueSize         int
	buckets, versions int
	plain             int
	m                 *Manifest // for the maps-ca versions name
}

// v2op is one v2 write.
type v2op struct {
	key   string
	value string
	ttl   time.Duration
	dir   bool
}

// planDocs sizes the documents of cfg and fills their part of m, before
// m's sections: which maps-ca are reachable depends on m.Versions.
func planDocs(cfg Config, m *Manifest) docs {
	d := docs{gw: cfg.GWPrefix, seed: cfg.Seed, valueSize: cfg.ValueSize, m: m}
	if cfg.Docs == 0 {
		return d
	}
	caMaps, _ := split(cfg.Objects / 2)
	d.buckets = (cfg.Docs + 99) / 100
	d.versions = max(0, min(caMaps-caMaps/5, (cfg.Docs-d.buckets)/4))
	d.plain = cfg.Docs - d.buckets - d.versions
	for i := 0; i < d.buckets; i++ {
		m.Buckets = append(m.Buckets, d.bucketKey(i))
		if i%3 == 0 {
			m.Published = append(m.Published, d.bucketKey(i))
		}
	}
	m.Docs, m.Versions, m.TTLDocs = cfg.Docs, d.versions, d.plain/20
	m.Hidden = []string{d.gw + "/" + LedgerEntry}
	m.EmptyDirs = []string{d.gw + "/uploads/pending"}
	return d
}

// count is how many v2 writes the documents take.
func (d docs) count() int {
	if d.buckets == 0 {
		return 0
	}
	return d.buckets + d.versions + d.plain + 2
}

func (d docs) bucket(i int) string    { return fmt.Sprintf("bucket-%04d", i) }
func (d docs) bucketKey(i int) string { return d.gw + "/buckets/" + d.bucket(i) }

// op is the i-th write.
func (d docs) op(i int) v2op {
	switch {
	case i < d.buckets:
		published := i%3 == 0
		v, _ := json.Marshal(map[string]any{"name": d.bucket(i), "published": published, "sync_revision": 1000 + i, "syncing": published})
		return v2op{key: d.bucketKey(i), value: string(v)}
	case i < d.buckets+d.versions:
		j := i - d.buckets
		b := d.bucket(j % d.buckets)
		m, _ := d.m.section(libmap.MapsCA, "").item(j)
		v, _ := json.Marshal(map[string]any{"bucket": b, "object": fmt.Sprintf("obj-%06d", j), "version": 1, "map": "maps-ca/" + m.Name})
		return v2op{key: fmt.Sprintf("%s/versions/%s/obj-%06d/v1", d.gw, b, j), value: string(v)}
	case i < d.buckets+d.versions+d.plain:
		j := i - d.buckets - d.versions
		op := v2op{key: fmt.Sprintf("%s/objects/%s/d%d/e%d/doc-%07d", d.gw, d.bucket(j%d.buckets), j%7, j%13, j),
			value: filler(d.seed, j, d.valueSize)}
		if j%20 == 19 {
			r := rand.New(rand.NewPCG(uint64(d.seed), mix(0x77c3^uint64(j))))
			op.ttl = time.Duration(3600+r.IntN(3600)) * time.Second
		}
		return op
	case i == d.buckets+d.versions+d.plain:
		ledger, _ := json.Marshal(map[string]any{"app": "gw", "name": "0001_initial", "applied": "2023-06-01T12:00:00Z"})
		return v2op{key: d.gw + "/" + LedgerEntry, value: string(ledger)}
	}
	return v2op{key: d.gw + "/uploads/pending", dir: true}
}

// filler is a printable, deterministic value of n bytes.
func filler(seed int64, i, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	x := uint64(seed)*0x9e3779b97f4a7c15 ^ uint64(i+1)*0xbf58476d1ce4e5b9
	b := make([]byte, n)
	for k := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[k] = alphabet[x&63]
	}
	return string(b)
}

// file is one file to write.
type file struct {
	path    string
	content []byte
	link    string // make a symlink to link instead
	dir     bool   // make a directory instead
}

// planBad plants a few invalid entries in every root, one per kind the
// classifier knows that a test running as root can make.
func planBad(cfg Config, m *Manifest) []file {
	var files []file
	add := func(scope libmap.Scope, node, path string, reason composer.Reason, f file) {
		f.path = path
		files = append(files, f)
		m.Bad = append(m.Bad, Bad{Scope: scope, Node: node, Path: path, Reason: reason})
	}
	for _, node := range cfg.Nodes {
		l := cfg.Layout.Node(node)
		idx := filepath.Join(l.Nodelocal, string(libmap.ChocksIdx))
		mu := filepath.Join(l.Nodelocal, string(libmap.MapsUUID))
		add(libmap.ChocksIdx, node, filepath.Join(idx, "17.tmp"), composer.Temporary, file{content: []byte("partial")})
		add(libmap.ChocksIdx, node, filepath.Join(idx, "0017"), composer.BadName, file{content: []byte("x")})
		add(libmap.ChocksIdx, node, filepath.Join(idx, "18446744073709551615"), composer.Symlink, file{link: "/dev/null"})
		add(libmap.ChocksIdx, node, filepath.Join(idx, "18446744073709551614"), composer.DirForFile, file{dir: true})
		add(libmap.MapsUUID, node, filepath.Join(mu, "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE"), composer.BadName, file{content: []byte("")})
		add(libmap.MapsUUID, node, filepath.Join(mu, "ffffffff-ffff-4fff-8fff-ffffffffffff"), composer.BadMap, file{content: []byte("chocks-idx/1\nnot a chock\n")})
	}
	l := cfg.Layout.Node("")
	wrong := sum([]byte("misplaced"))
	hh := "00"
	if strings.HasPrefix(wrong, hh) {
		hh = "01"
	}
	cc := filepath.Join(l.Local, string(libmap.ChocksCA))
	add(libmap.ChocksCA, "", filepath.Join(cc, hh, wrong), composer.HashFolder, file{content: []byte("misplaced")})
	add(libmap.ChocksCA, "", filepath.Join(cc, "ab", "ab"+strings.Repeat("0", 62)+".part"), composer.Temporary, file{content: []byte("partial")})
	add(libmap.ChocksCA, "", filepath.Join(cc, "zz"), composer.BadName, file{dir: true})
	add(libmap.MapsCA, "", filepath.Join(l.Local, string(libmap.MapsCA), "stray"), composer.FileForDir, file{content: []byte("x")})
	return files
}
