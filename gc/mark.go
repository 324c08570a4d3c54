package gc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/libmap"
)

// markNode marks what this node's maps reach: every maps-uuid is a root
// (a live volume) and reaches the chocks-idx it lists.
func (g *run) markNode(ctx context.Context) error {
	g.idxReach = newIdxSet()
	err := g.cfg.Layout.Scan(ctx, libmap.MapsUUID, func(e composer.Entry) error {
		if !e.Valid() {
			g.bad(e)
			if e.Bad == composer.Unreadable || e.Bad == composer.BadMap {
				g.rootsIncomplete(libmap.ChocksIdx, fmt.Sprintf("map %s cannot be read (%s)", e.Path, e.Bad))
			}
			return nil
		}
		g.r.Scanned++
		g.r.Reachable++
		g.r.Roots++
		refs, err := composer.ReadMap(e.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since listed: a volume went away
		}
		if err != nil {
			g.rootsIncomplete(libmap.ChocksIdx, fmt.Sprintf("map %s: %v", e.Path, err))
			return nil
		}
		for _, ref := range refs {
			if ref.Scope == libmap.ChocksIdx {
				n, _ := strconv.ParseUint(ref.Name, 10, 64) // ParseRef validated it
				g.idxReach.add(n)
			}
		}
		return nil
	}, composer.WithoutRefs())
	g.idxReach.seal()
	if errors.Is(err, composer.ErrNoScopeDir) {
		return nil
	}
	return err
}

// markCA marks what the Gateway's versions reach: the maps-ca each names
// in "map", and the chocks-ca those maps list. Versions are read from v3
// and from v2 (before the move they live in v2): more roots is the safe
// side.
func (g *run) markCA(ctx context.Context) error {
	g.caMaps, g.caChocks = newMapSet(), newChockSet()
	prefix := strings.TrimSuffix(g.cfg.GWPrefix, "/") + "/versions/"
	if err := g.v3Versions(ctx, prefix); err != nil {
		return err
	}
	if g.cfg.V2 != nil {
		if err := g.v2Versions(ctx, strings.TrimSuffix(prefix, "/")); err != nil {
			return err
		}
	} else {
		g.note("Gateway versions read from v3 only (no v2 client)")
	}
	g.markCAMaps()
	return nil
}

// markCAMaps marks the chocks-ca listed by each maps-ca the versions
// named, caMapReaders maps read at once: read one after the other, the
// 49 500 maps-ca named in a 1-million-object store took 0.8 s of the CA
// mark, waiting on each file in turn.
func (g *run) markCAMaps() {
	g.caMaps.seal()
	var (
		readers errgroup.Group
		mu      sync.Mutex // guards the chock set and the report
	)
	readers.SetLimit(caMapReaders)
	for _, h := range g.caMaps.all() {
		readers.Go(func() error {
			path := g.cfg.Layout.Path(libmap.MapsCA, hex.EncodeToString(h[:]))
			refs, err := composer.ReadMap(path)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, fs.ErrNotExist):
				g.r.MissingRoots++
			case err != nil:
				g.rootsIncomplete(libmap.ChocksCA, fmt.Sprintf("map %s: %v", path, err))
			default:
				for _, ref := range refs {
					if ref.Scope == libmap.ChocksCA {
						g.caChocks.add(keyOf(ref.Name))
					}
				}
			}
			return nil
		})
	}
	readers.Wait()
	g.caChocks.seal()
}

// caMapReaders is how many maps-ca the CA mark reads at once.
var caMapReaders = composer.DefaultWorkers()

func (g *run) v3Versions(ctx context.Context, prefix string) error {
	for p := conn.NewPager(g.cli, prefix, clientv3.GetPrefixRangeEnd(prefix), 1000); p.More(); {
		kvs, err := p.Next(ctx)
		if err != nil {
			return fmt.Errorf("gc: read Gateway versions %s: %w", prefix, err)
		}
		for _, kv := range kvs {
			g.version(string(kv.Key), kv.Value)
		}
	}
	return nil
}

// v2Versions walks the v2 versions tree as the Gateway's move reads v2
// (gateway.WalkV2): each object's versions are a directory of their own
// (versions/<bucket>/<object>/<version>), so reading one directory per
// request cost a round trip per object: 3.4 s of a CA run's 4.2 s mark
// at 200 000 documents, where the whole mark now takes 0.9 s.
func (g *run) v2Versions(ctx context.Context, dir string) error {
	err := gateway.WalkV2(ctx, g.cfg.V2, dir, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			g.version(n.Key, []byte(n.Value))
		}
		return nil
	})
	if errors.Is(err, conn.ErrV2Disabled) {
		g.note("the etcd v2 API is disabled: Gateway versions read from v3 only")
		return nil
	}
	if err != nil {
		return fmt.Errorf("gc: Gateway versions: %w", err)
	}
	return nil
}

// version marks the map a version document names. A document that is not
// JSON, or names a map in a form we do not know, might name a map we cannot
// see: the CA scopes are then not collected at all.
func (g *run) version(key string, v []byte) {
	var doc struct {
		Map *string `json:"map"`
	}
	if err := json.Unmarshal(v, &doc); err != nil {
		g.badf("version document %s is not JSON", key)
		g.rootsIncomplete(libmap.MapsCA, "version document "+key+" is not JSON")
		g.rootsIncomplete(libmap.ChocksCA, "version document "+key+" is not JSON")
		return
	}
	if doc.Map == nil {
		return
	}
	name, ok := strings.CutPrefix(*doc.Map, string(libmap.MapsCA)+"/")
	if !ok || !composer.ValidName(libmap.MapsCA, name) {
		g.badf("version document %s names map %q", key, *doc.Map)
		g.rootsIncomplete(libmap.MapsCA, fmt.Sprintf("version document %s names map %q", key, *doc.Map))
		g.rootsIncomplete(libmap.ChocksCA, fmt.Sprintf("version document %s names map %q", key, *doc.Map))
		return
	}
	g.r.Roots++
	g.caMaps.add(hash(name))
}

func hash(name string) [32]byte {
	var h [32]byte
	hex.Decode(h[:], []byte(name)) // names are validated hashes
	return h
}

func (g *run) reached(scope libmap.Scope, name string) bool {
	switch scope {
	case libmap.ChocksIdx:
		n, _ := strconv.ParseUint(name, 10, 64)
		return g.idxReach.has(n)
	case libmap.MapsCA:
		return g.caMaps.has(hash(name))
	case libmap.ChocksCA:
		return g.caChocks.has(keyOf(name))
	}
	return true // maps-uuid: every one is a root
}
