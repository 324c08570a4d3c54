package seed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/libmap"
)

// Defaults of a Config.
const (
	DefaultValueSize = 256
	// DefaultWorkers: v2 has no batching, so its throughput comes from many
	// requests in flight, which etcd commits together.
	DefaultWorkers = 64
	// StaleEpoch is the value of every v2 epoch key: the old cache's
	// epochs mean nothing to 0.14.
	StaleEpoch = "42"
	// LedgerEntry is the v2-era migration the Gateway had applied.
	LedgerEntry = "_migrations/gw/0001_initial"
)

var (
	// ErrNotEmpty is returned when a target prefix or storage root already
	// holds data and Force is not set.
	ErrNotEmpty = errors.New("seed: target not empty (use --force to write anyway)")
	// ErrBadConfig is returned for sizes that make no sense.
	ErrBadConfig = errors.New("seed: bad configuration")
)

// Config sizes an installation.
type Config struct {
	Docs      int // Gateway documents (buckets, versions and plain documents)
	Objects   int // valid objects on storage, all scopes and nodes together
	Nodes     []string
	ValueSize int   // bytes of a plain Gateway document
	Seed      int64 // same seed, same installation
	GWPrefix  string
	V2Epochs  string // the v2 epoch cache dir; default /epochs
	Layout    Layout
	// Force writes into a non-empty prefix or root: existing keys and files
	// are kept, those the seed names are overwritten.
	Force bool
	// Workers bounds the concurrent v2 writes and file writes.
	Workers int
	// OnProgress reports each stage's progress; calls are serialised.
	OnProgress func(stage string, done, total int64)
}

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

// Bad is an invalid entry the seed planted: it must never be stamped or
// deleted.
type Bad struct {
	Scope  libmap.Scope    `json:"scope"`
	Node   string          `json:"node,omitempty"`
	Path   string          `json:"path"`
	Reason composer.Reason `json:"reason"`
}

// Manifest is what a seed wrote.
type Manifest struct {
	Seed      int64    `json:"seed"`
	Nodes     []string `json:"nodes"`
	GWPrefix  string   `json:"gw_prefix"`
	V2Epochs  string   `json:"v2_epochs"`
	LocalRoot string   `json:"local_root"`
	// NodelocalRoots maps each node to its nodelocal root.
	NodelocalRoots map[string]string `json:"nodelocal_roots"`

	Docs        int      `json:"docs"`       // v2 leaves under the prefix, hidden ones excluded
	TTLDocs     int      `json:"ttl_docs"`   // of which with a TTL
	Buckets     []string `json:"buckets"`    // bucket document keys
	Published   []string `json:"published"`  // bucket document keys with "published": true
	Versions    int      `json:"versions"`   // version documents
	Hidden      []string `json:"hidden"`     // hidden keys (read them by name)
	EmptyDirs   []string `json:"empty_dirs"` // empty v2 directories
	V2EpochKeys int      `json:"v2_epoch_keys"`

	Objects []Object `json:"objects"`
	Bad     []Bad    `json:"bad"`
	// MissingChocks are map → chock references to chocks not on storage.
	MissingChocks []string `json:"missing_chocks"`
}

// Count returns the valid objects of scope (of node, if given).
func (m *Manifest) Count(scope libmap.Scope, node string) int {
	n := 0
	for _, o := range m.Objects {
		if o.Scope == scope && (node == "" || o.Node == node) {
			n++
		}
	}
	return n
}

// WriteFile writes the manifest as JSON.
func (m *Manifest) WriteFile(path string) error {
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
	return &m, nil
}

// Run writes the installation cfg describes through keys (the v2 API) and
// into the storage roots, and returns its manifest. It refuses a non-empty
// Gateway prefix, v2 epoch dir or storage root unless cfg.Force.
// Cancelling ctx stops the writers; what was written stays.
func Run(ctx context.Context, keys clientv2.KeysAPI, cfg Config) (*Manifest, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if !cfg.Force {
		if err := cfg.checkEmpty(ctx, keys); err != nil {
			return nil, err
		}
	}
	p := plan(cfg)
	if err := p.writeStorage(ctx, cfg); err != nil {
		return nil, err
	}
	if err := p.writeV2(ctx, keys, cfg); err != nil {
		return nil, err
	}
	return p.m, nil
}

func (c *Config) fill() error {
	if c.Docs < 0 || c.Objects < 0 || c.ValueSize < 0 {
		return fmt.Errorf("%w: sizes must not be negative", ErrBadConfig)
	}
	if len(c.Nodes) == 0 {
		return fmt.Errorf("%w: at least one node", ErrBadConfig)
	}
	if c.Layout.Dir == "" && (c.Layout.LocalRoot == "" || c.Layout.NodelocalRoot == "") {
		return fmt.Errorf("%w: a storage parent dir, or both roots", ErrBadConfig)
	}
	if c.Layout.NodelocalRoot != "" && len(c.Nodes) > 1 {
		return fmt.Errorf("%w: an explicit nodelocal root holds one node, not %d", ErrBadConfig, len(c.Nodes))
	}
	if c.GWPrefix == "" {
		c.GWPrefix = gateway.DefaultPrefix
	}
	c.GWPrefix = "/" + strings.Trim(c.GWPrefix, "/")
	if c.V2Epochs == "" {
		c.V2Epochs = libmap.DefaultV2Dir
	}
	if c.ValueSize == 0 {
		c.ValueSize = DefaultValueSize
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	return nil
}

// checkEmpty refuses a target that holds anything. v2 hides "_" nodes from
// listings, so the hidden ledger is read by name.
func (c *Config) checkEmpty(ctx context.Context, keys clientv2.KeysAPI) error {
	for _, k := range []string{c.GWPrefix, c.GWPrefix + "/_migrations", c.V2Epochs} {
		resp, err := keys.Get(ctx, k, nil)
		if clientv2.IsKeyNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("seed: check v2 %s: %w", k, conn.V2Error(err))
		}
		if !resp.Node.Dir || len(resp.Node.Nodes) > 0 {
			return fmt.Errorf("%w: v2 %s holds data", ErrNotEmpty, k)
		}
	}
	roots := []string{c.Layout.Local()}
	for _, n := range c.Nodes {
		roots = append(roots, c.Layout.Nodelocal(n))
	}
	for _, r := range roots {
		ents, err := os.ReadDir(r)
		if err == nil && len(ents) > 0 {
			return fmt.Errorf("%w: %s is not empty", ErrNotEmpty, r)
		}
	}
	return nil
}

// file is one file to write; v2op one v2 write.
type file struct {
	path    string
	content []byte
	link    string // make a symlink to link instead
	dir     bool   // make a directory instead
}

type v2op struct {
	key   string
	value string
	ttl   time.Duration
	dir   bool
	// fill > 0 means the value is filler(seed, idx, fill), made when written
	// so that a large seed does not hold every value in memory.
	fill, idx int
}

type planned struct {
	m     *Manifest
	files []file
	docs  []v2op
}

// plan decides everything from the seed, before any write, so the result
// does not depend on the order the concurrent writers finish in.
func plan(cfg Config) *planned {
	r := rand.New(rand.NewSource(cfg.Seed))
	m := &Manifest{
		Seed: cfg.Seed, Nodes: cfg.Nodes, GWPrefix: cfg.GWPrefix, V2Epochs: cfg.V2Epochs,
		LocalRoot: cfg.Layout.Local(), NodelocalRoots: map[string]string{},
	}
	p := &planned{m: m}

	// Half the objects are content-addressed and shared; the other half is
	// spread over the nodes.
	caN := cfg.Objects / 2
	nlN := cfg.Objects - caN
	ca := p.planCA(r, cfg, caN)
	for i, node := range cfg.Nodes {
		n := nlN / len(cfg.Nodes)
		if i < nlN%len(cfg.Nodes) {
			n++
		}
		m.NodelocalRoots[node] = cfg.Layout.Nodelocal(node)
		p.planNodelocal(r, cfg, node, n)
	}
	p.planDocs(r, cfg, ca)
	p.planBad(cfg)
	return p
}

// split is how many maps and chocks n objects hold: one map in five.
func split(n int) (maps, chocks int) {
	maps = n / 5
	if maps == 0 && n >= 2 {
		maps = 1
	}
	return maps, n - maps
}

// refs picks k chocks for a map from the first pool chocks: the rest (a
// fifth) is garbage nobody references.
func refs(r *rand.Rand, chocks int) []int {
	pool := chocks - chocks/5
	if pool == 0 {
		return nil
	}
	k := 1 + r.Intn(6)
	out := make([]int, k)
	for i := range out {
		out[i] = r.Intn(pool)
	}
	return out
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// caPlan is the content-addressed half, kept until the Gateway versions
// decide which maps are reachable.
type caPlan struct {
	maps      []string // hashes, in the order versions name them
	mapRefs   [][]int  // chock indexes each map references
	mapObj    []int    // index of each map in Manifest.Objects
	chockObj0 int      // index of chock 0 in Manifest.Objects
}

// planCA plans maps-ca and chocks-ca.
func (p *planned) planCA(r *rand.Rand, cfg Config, n int) *caPlan {
	l := cfg.Layout.Node("")
	nMaps, nChocks := split(n)
	ca := &caPlan{chockObj0: len(p.m.Objects)}
	hashes := make([]string, nChocks)
	for i := range hashes {
		// A chock's name is the sha256 of its content, as in Rok.
		content := []byte(fmt.Sprintf("chock-ca seed=%d i=%d\n", cfg.Seed, i))
		hashes[i] = sum(content)
		path := l.Path(libmap.ChocksCA, hashes[i])
		p.files = append(p.files, file{path: path, content: content})
		p.m.Objects = append(p.m.Objects, Object{Scope: libmap.ChocksCA, Name: hashes[i], Path: path})
	}
	seen := map[string]bool{}
	for j := 0; j < nMaps; j++ {
		rs := refs(r, nChocks)
		var b strings.Builder
		for _, c := range rs {
			fmt.Fprintf(&b, "chocks-ca/%s\n", hashes[c])
		}
		// Two maps with the same chocks would be one file: add a chock
		// until the content is new.
		for seen[sum([]byte(b.String()))] {
			c := r.Intn(nChocks - nChocks/5)
			rs = append(rs, c)
			fmt.Fprintf(&b, "chocks-ca/%s\n", hashes[c])
		}
		content := []byte(b.String())
		h := sum(content)
		seen[h] = true
		path := l.Path(libmap.MapsCA, h)
		p.files = append(p.files, file{path: path, content: content})
		ca.maps = append(ca.maps, h)
		ca.mapRefs = append(ca.mapRefs, rs)
		ca.mapObj = append(ca.mapObj, len(p.m.Objects))
		p.m.Objects = append(p.m.Objects, Object{Scope: libmap.MapsCA, Name: h, Path: path})
	}
	return ca
}

// reach marks the first versions maps (those a Gateway version names) and
// their chocks reachable.
func (p *planned) reach(ca *caPlan, versions int) {
	for j := 0; j < versions && j < len(ca.maps); j++ {
		p.m.Objects[ca.mapObj[j]].Reachable = true
		for _, c := range ca.mapRefs[j] {
			p.m.Objects[ca.chockObj0+c].Reachable = true
		}
	}
}

// planNodelocal plans one node's maps-uuid and chocks-idx. Every maps-uuid
// is a live volume, so it and its chocks are reachable.
func (p *planned) planNodelocal(r *rand.Rand, cfg Config, node string, n int) {
	l := cfg.Layout.Node(node)
	nMaps, nChocks := split(n)
	chock0 := len(p.m.Objects)
	for i := 0; i < nChocks; i++ {
		name := fmt.Sprint(i)
		path := l.Path(libmap.ChocksIdx, name)
		p.files = append(p.files, file{path: path, content: []byte(fmt.Sprintf("chock-idx node=%s seed=%d i=%d\n", node, cfg.Seed, i))})
		p.m.Objects = append(p.m.Objects, Object{Scope: libmap.ChocksIdx, Node: node, Name: name, Path: path})
	}
	for j := 0; j < nMaps; j++ {
		id := uuid(r)
		var b strings.Builder
		for _, c := range refs(r, nChocks) {
			fmt.Fprintf(&b, "chocks-idx/%d\n", c)
			p.m.Objects[chock0+c].Reachable = true
		}
		if j == 0 && nChocks > 0 {
			// One live volume names a chock that is gone: it must be
			// reported, and the map still stamped.
			fmt.Fprintf(&b, "chocks-idx/%d\n", nChocks+1000)
			p.m.MissingChocks = append(p.m.MissingChocks, fmt.Sprintf("%s/maps-uuid/%s → chocks-idx/%d", node, id, nChocks+1000))
		}
		path := l.Path(libmap.MapsUUID, id)
		p.files = append(p.files, file{path: path, content: []byte(b.String())})
		p.m.Objects = append(p.m.Objects, Object{Scope: libmap.MapsUUID, Node: node, Name: id, Path: path, Reachable: true})
	}
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

// planDocs plans the Gateway documents: one bucket per hundred documents
// (every third published), a version per reachable maps-ca up to a quarter
// of the documents, and plain documents in nested folders, one in twenty
// with a TTL. Then the hidden ledger entry and one empty folder.
func (p *planned) planDocs(r *rand.Rand, cfg Config, ca *caPlan) {
	gw := cfg.GWPrefix
	d := cfg.Docs
	if d == 0 {
		p.reach(ca, 0)
		return
	}
	nb := (d + 99) / 100
	nv := len(ca.maps) - len(ca.maps)/5
	if lim := (d - nb) / 4; nv > lim {
		nv = lim
	}
	if nv < 0 {
		nv = 0
	}
	p.reach(ca, nv)
	buckets := make([]string, nb)
	for i := range buckets {
		buckets[i] = fmt.Sprintf("bucket-%04d", i)
		key := gw + "/buckets/" + buckets[i]
		published := i%3 == 0
		v, _ := json.Marshal(map[string]any{"name": buckets[i], "published": published, "sync_revision": 1000 + i, "syncing": published})
		p.docs = append(p.docs, v2op{key: key, value: string(v)})
		p.m.Buckets = append(p.m.Buckets, key)
		if published {
			p.m.Published = append(p.m.Published, key)
		}
	}
	for j := 0; j < nv; j++ {
		b := buckets[j%nb]
		v, _ := json.Marshal(map[string]any{"bucket": b, "object": fmt.Sprintf("obj-%06d", j), "version": 1, "map": "maps-ca/" + ca.maps[j]})
		p.docs = append(p.docs, v2op{key: fmt.Sprintf("%s/versions/%s/obj-%06d/v1", gw, b, j), value: string(v)})
	}
	p.m.Versions = nv
	for i := 0; i < d-nb-nv; i++ {
		op := v2op{
			key:  fmt.Sprintf("%s/objects/%s/d%d/e%d/doc-%07d", gw, buckets[i%nb], i%7, i%13, i),
			fill: cfg.ValueSize,
			idx:  i,
		}
		if i%20 == 19 {
			op.ttl = time.Duration(3600+r.Intn(3600)) * time.Second
			p.m.TTLDocs++
		}
		p.docs = append(p.docs, op)
	}
	p.m.Docs = d
	ledger, _ := json.Marshal(map[string]any{"app": "gw", "name": "0001_initial", "applied": "2023-06-01T12:00:00Z"})
	p.docs = append(p.docs, v2op{key: gw + "/" + LedgerEntry, value: string(ledger)})
	p.m.Hidden = append(p.m.Hidden, gw+"/"+LedgerEntry)
	p.docs = append(p.docs, v2op{key: gw + "/uploads/pending", dir: true})
	p.m.EmptyDirs = append(p.m.EmptyDirs, gw+"/uploads/pending")
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

// planBad plants a few invalid entries in every root, one per kind the
// classifier knows that a test running as root can make.
func (p *planned) planBad(cfg Config) {
	add := func(scope libmap.Scope, node, path string, reason composer.Reason, f file) {
		f.path = path
		p.files = append(p.files, f)
		p.m.Bad = append(p.m.Bad, Bad{Scope: scope, Node: node, Path: path, Reason: reason})
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
}

// writeStorage writes every planned file with a bounded pool of workers.
func (p *planned) writeStorage(ctx context.Context, cfg Config) error {
	dirs := map[string]bool{}
	for _, node := range cfg.Nodes {
		l := cfg.Layout.Node(node)
		dirs[l.Dir(libmap.MapsUUID)] = true
		dirs[l.Dir(libmap.ChocksIdx)] = true
	}
	l := cfg.Layout.Node("")
	for i := 0; i < 256; i++ {
		hh := fmt.Sprintf("%02x", i)
		dirs[filepath.Join(l.Dir(libmap.MapsCA), hh)] = true
		dirs[filepath.Join(l.Dir(libmap.ChocksCA), hh)] = true
	}
	for d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return pool(ctx, cfg, "storage", len(p.files), func(i int) error {
		f := p.files[i]
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return err
		}
		switch {
		case f.dir:
			return os.MkdirAll(f.path, 0o755)
		case f.link != "":
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return os.Symlink(f.link, f.path)
		}
		return os.WriteFile(f.path, f.content, 0o644)
	})
}

// writeV2 writes the Gateway documents and the stale epoch cache, many
// requests at once: v2 has no batching.
func (p *planned) writeV2(ctx context.Context, keys clientv2.KeysAPI, cfg Config) error {
	err := pool(ctx, cfg, "gateway documents", len(p.docs), func(i int) error {
		op := p.docs[i]
		opts := &clientv2.SetOptions{TTL: op.ttl, Dir: op.dir}
		if op.dir {
			// An existing dir (a forced re-seed) is fine.
			_, err := keys.Set(ctx, op.key, "", opts)
			if e, ok := err.(clientv2.Error); ok && e.Code == clientv2.ErrorCodeNotFile {
				return nil
			}
			return err
		}
		v := op.value
		if op.fill > 0 {
			v = filler(cfg.Seed, op.idx, op.fill)
		}
		_, err := keys.Set(ctx, op.key, v, opts)
		return err
	})
	if err != nil {
		return err
	}
	objs := p.m.Objects
	err = pool(ctx, cfg, "v2 epochs", len(objs), func(i int) error {
		key := cfg.V2Epochs + "/" + string(objs[i].Scope) + "/" + objs[i].ID()
		_, err := keys.Set(ctx, key, StaleEpoch, nil)
		return err
	})
	if err != nil {
		return err
	}
	p.m.V2EpochKeys = len(objs)
	return nil
}

// pool runs fn(0…n-1) on cfg.Workers goroutines and stops at the first
// error.
func pool(ctx context.Context, cfg Config, stage string, n int, fn func(int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, done int64 = -1, 0
	var once sync.Once
	var first error
	var mu sync.Mutex
	report := func() {
		if cfg.OnProgress != nil {
			mu.Lock()
			cfg.OnProgress(stage, atomic.LoadInt64(&done), int64(n))
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := atomic.AddInt64(&next, 1)
				if i >= int64(n) {
					return
				}
				if err := fn(int(i)); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
				if d := atomic.AddInt64(&done, 1); d%1000 == 0 || d == int64(n) {
					report()
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("seed: %s: %w", stage, conn.V2Error(first))
	}
	if err := ctx.Err(); err != nil && n > 0 && atomic.LoadInt64(&done) < int64(n) {
		return fmt.Errorf("seed: %s: %w", stage, err)
	}
	return nil
}
