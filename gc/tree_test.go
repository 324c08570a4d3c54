package gc_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

// tree is a small Rok installation for one test: an etcd with both stores,
// a node's nodelocal storage and the shared local storage.
type tree struct {
	t      testing.TB
	m      *embed.Member
	cli    *clientv3.Client
	v2     clientv2.KeysAPI
	cache  *libmap.Cache
	node   string
	layout composer.Layout
}

func newTree(t testing.TB) *tree {
	t.Helper()
	return newTreeOn(t, embed.NewTestMember(t))
}

// newTreeOn builds the tree on a member the caller started.
func newTreeOn(t testing.TB, m *embed.Member) *tree {
	t.Helper()
	dir := t.TempDir()
	tr := &tree{
		t: t, m: m, node: "node-1",
		cli:    embed.NewTestClient(t, m.Endpoints()),
		v2:     embed.NewTestV2(t, m.Endpoints()),
		layout: composer.Layout{Nodelocal: filepath.Join(dir, "nodelocal"), Local: filepath.Join(dir, "local")},
	}
	tr.cache = libmap.New(tr.cli)
	for _, sc := range libmap.Scopes() {
		if err := os.MkdirAll(tr.layout.Dir(sc), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// newGarbageTree is a node with one volume naming chocks 1 and 2 and n
// garbage chocks, 100 on, all stamped as by the upgrade's epoch update.
func newGarbageTree(t testing.TB, n uint64) *tree {
	t.Helper()
	tr := newTree(t)
	tr.volume(1, 1, 2)
	for i := uint64(100); i < 100+n; i++ {
		tr.chock(i)
	}
	tr.epochUpdate()
	return tr
}

func (tr *tree) write(path, content string) {
	tr.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

// chock writes chocks-idx/<n>.
func (tr *tree) chock(n uint64) string {
	name := strconv.FormatUint(n, 10)
	tr.write(tr.layout.Path(libmap.ChocksIdx, name), "chock "+name)
	return name
}

// volume writes a maps-uuid map listing chocks (written too).
func (tr *tree) volume(i int, chocks ...uint64) string {
	uuid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	var refs []composer.Ref
	for _, n := range chocks {
		refs = append(refs, composer.Ref{Scope: libmap.ChocksIdx, Name: tr.chock(n)})
	}
	tr.writeMap(tr.layout.Path(libmap.MapsUUID, uuid), refs)
	return uuid
}

func (tr *tree) writeMap(path string, refs []composer.Ref) {
	tr.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := composer.WriteMap(f, refs); err != nil {
		tr.t.Fatal(err)
	}
	f.Close()
}

func hashOf(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// caChock writes a chocks-ca object with content s and returns its hash.
func (tr *tree) caChock(s string) string {
	h := hashOf(s)
	tr.write(tr.layout.Path(libmap.ChocksCA, h), s)
	return h
}

// caMap writes a maps-ca map listing the chocks-ca hashes.
func (tr *tree) caMap(chocks ...string) string {
	var refs []composer.Ref
	for _, c := range chocks {
		refs = append(refs, composer.Ref{Scope: libmap.ChocksCA, Name: c})
	}
	content := fmt.Sprint(chocks)
	h := hashOf("map " + content)
	tr.writeMap(tr.layout.Path(libmap.MapsCA, h), refs)
	return h
}

// versionV3 and versionV2 write a Gateway version document naming map.
func (tr *tree) versionV3(key, mapHash string) {
	tr.t.Helper()
	if _, err := tr.cli.Put(context.Background(), "/rok/gw/versions/"+key, fmt.Sprintf(`{"bucket":"b","map":"maps-ca/%s"}`, mapHash)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *tree) versionV2(key, mapHash string) {
	tr.t.Helper()
	if _, err := tr.v2.Set(context.Background(), "/rok/gw/versions/"+key, fmt.Sprintf(`{"map":"maps-ca/%s"}`, mapHash), nil); err != nil {
		tr.t.Fatal(err)
	}
}

// epochUpdate stamps every object of every scope with the current epoch,
// as `rok-composer-tool epoch-update --all` does.
func (tr *tree) epochUpdate() {
	tr.t.Helper()
	ctx := context.Background()
	for _, sc := range libmap.Scopes() {
		s, err := tr.cache.NewStamper(ctx, sc, tr.node, libmap.StampConfig{})
		if err != nil {
			tr.t.Fatal(err)
		}
		err = tr.layout.Scan(ctx, sc, func(e composer.Entry) error {
			if e.Valid() {
				return s.Add(e.Name)
			}
			return nil
		}, composer.WithoutRefs())
		if err != nil {
			tr.t.Fatal(err)
		}
		if _, err := s.Close(); err != nil {
			tr.t.Fatal(err)
		}
	}
}

func (tr *tree) id(sc libmap.Scope, name string) string { return sc.ID(tr.node, name) }

// epoch returns the object's epoch key value, "" when absent.
func (tr *tree) epoch(sc libmap.Scope, name string) string {
	tr.t.Helper()
	resp, err := tr.cli.Get(context.Background(), tr.cache.Key(sc, tr.id(sc, name)))
	if err != nil {
		tr.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// present reports whether the object's file exists.
func (tr *tree) present(sc libmap.Scope, name string) bool {
	_, err := os.Lstat(tr.layout.Path(sc, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tr.t.Fatal(err)
	}
	return err == nil
}

// gone asserts the object was collected (file and epoch key), kept that
// it is still there.
func (tr *tree) gone(sc libmap.Scope, names ...string) {
	tr.t.Helper()
	for _, n := range names {
		if tr.present(sc, n) || tr.epoch(sc, n) != "" {
			tr.t.Errorf("%s/%s should be collected: file present %v, epoch %q", sc, n, tr.present(sc, n), tr.epoch(sc, n))
		}
	}
}

func (tr *tree) kept(sc libmap.Scope, names ...string) {
	tr.t.Helper()
	for _, n := range names {
		if !tr.present(sc, n) {
			tr.t.Errorf("%s/%s should be kept: its file is gone", sc, n)
		}
	}
}

func (tr *tree) config(ca bool) gc.Config {
	return gc.Config{Node: tr.node, CA: ca, Layout: tr.layout, V2: tr.v2}
}

func (tr *tree) run(cfg gc.Config) *gc.Report {
	tr.t.Helper()
	r, err := gc.Run(context.Background(), tr.cli, cfg)
	if err != nil {
		tr.t.Fatalf("gc run: %v (report %+v)", err, r)
	}
	return r
}
