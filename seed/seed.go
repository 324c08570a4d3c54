package seed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	clientv2 "go.etcd.io/etcd/client/v2"

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
	// DefaultV2EpochMax is how many keys the stale v2 epoch cache gets at
	// most. etcd's v2 store holds every key in memory (about 7 GiB for
	// 1.2M keys on the bench's machine, issue #14), so above this many
	// objects the cache holds an even sample, every k-th object: 10M
	// objects would need some 60 GiB. A million keeps the cache whole at
	// every size the tests, the demo and the README's bench use.
	DefaultV2EpochMax = 1_000_000
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
	// V2EpochMax caps the v2 epoch cache's keys (0: DefaultV2EpochMax;
	// negative: one per object whatever the size).
	V2EpochMax int
	// OnProgress reports each stage's progress; calls are serialised.
	OnProgress func(stage string, done, total int64)
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
	m := &Manifest{
		Format: ManifestFormat, Seed: cfg.Seed, Nodes: cfg.Nodes, GWPrefix: cfg.GWPrefix, V2Epochs: cfg.V2Epochs,
		LocalRoot: cfg.Layout.Local(), NodelocalRoots: map[string]string{}, Total: cfg.Objects,
	}
	for _, n := range cfg.Nodes {
		m.NodelocalRoots[n] = cfg.Layout.Nodelocal(n)
	}
	d := planDocs(cfg, m)
	bad := planBad(cfg, m)
	m.V2EpochEvery, m.V2EpochKeys = v2Sample(cfg.Objects, cfg.V2EpochMax)
	for _, s := range m.plan() {
		if s.scope == libmap.MapsUUID && s.n > 0 && s.chocks > 0 {
			id, _ := s.draw(0)
			m.MissingChocks = append(m.MissingChocks, fmt.Sprintf("%s/maps-uuid/%s → chocks-idx/%d", s.node, id, s.chocks+1000))
		}
	}
	if err := writeStorage(ctx, cfg, m, bad); err != nil {
		return nil, err
	}
	if err := writeV2(ctx, keys, cfg, m, d); err != nil {
		return nil, err
	}
	return m, nil
}

// v2Sample is every k-th object of n, and how many keys that is, for a
// cache of at most limit keys.
func v2Sample(n, limit int) (every, keys int) {
	if limit < 0 || n <= limit {
		return 1, n
	}
	every = (n + limit - 1) / limit
	return every, (n + every - 1) / every
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
	if c.V2EpochMax == 0 {
		c.V2EpochMax = DefaultV2EpochMax
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

// writeStorage writes every object's file and the bad entries with a
// bounded pool of workers, each object made when written.
func writeStorage(ctx context.Context, cfg Config, m *Manifest, bad []file) error {
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
	return pool(ctx, cfg, "storage", m.Total+len(bad), func(i int) error {
		if i < m.Total {
			o, content := m.object(i)
			return os.WriteFile(o.Path, content, 0o644)
		}
		f := bad[i-m.Total]
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

// writeV2 writes the Gateway documents and the stale epoch cache (the
// sampled objects' keys), many requests at once: v2 has no batching.
func writeV2(ctx context.Context, keys clientv2.KeysAPI, cfg Config, m *Manifest, d docs) error {
	err := pool(ctx, cfg, "gateway documents", d.count(), func(i int) error {
		op := d.op(i)
		opts := &clientv2.SetOptions{TTL: op.ttl, Dir: op.dir}
		if op.dir {
			// An existing dir (a forced re-seed) is fine.
			_, err := keys.Set(ctx, op.key, "", opts)
			if e, ok := err.(clientv2.Error); ok && e.Code == clientv2.ErrorCodeNotFile {
				return nil
			}
			return err
		}
		_, err := keys.Set(ctx, op.key, op.value, opts)
		return err
	})
	if err != nil {
		return err
	}
	return pool(ctx, cfg, "v2 epochs", m.V2EpochKeys, func(i int) error {
		o, _ := m.object(i * m.V2EpochEvery)
		_, err := keys.Set(ctx, cfg.V2Epochs+"/"+string(o.Scope)+"/"+o.ID(), StaleEpoch, nil)
		return err
	})
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
