package seed_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// newV2 is a v2 client whose idle connections are closed before the member
// stops: the embedded etcd's Close waits forever on a connection that was
// dialed but never used (cmux is still matching its protocol).
func newV2(t *testing.T, eps []string) clientv2.KeysAPI {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	c, err := clientv2.New(clientv2.Config{Endpoints: eps, Transport: tr, HeaderTimeoutPerRequest: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return clientv2.NewKeysAPI(c)
}

func leaves(t *testing.T, keys clientv2.KeysAPI, dir string) (n, ttl int) {
	t.Helper()
	resp, err := keys.Get(context.Background(), dir, &clientv2.GetOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	var walk func(*clientv2.Node)
	walk = func(nd *clientv2.Node) {
		if !nd.Dir {
			n++
			if nd.TTL > 0 {
				ttl++
			}
		}
		for _, c := range nd.Nodes {
			walk(c)
		}
	}
	walk(resp.Node)
	return n, ttl
}

func TestSeedWritesWhatTheManifestSays(t *testing.T) {
	m := embed.NewTestMember(t)
	keys := newV2(t, m.Endpoints())
	ctx := context.Background()
	cfg := seed.Config{Docs: 300, Objects: 400, Nodes: seed.Nodes(2), Seed: 7, Layout: seed.Layout{Dir: t.TempDir()}}
	man, err := seed.Run(ctx, keys, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if man.Total != 400 {
		t.Fatalf("%d objects, want 400", man.Total)
	}
	docs, ttl := leaves(t, keys, "/rok/gw")
	if docs != 300 || ttl != man.TTLDocs || ttl == 0 {
		t.Fatalf("v2 holds %d documents (%d with TTL), manifest %d (%d)", docs, ttl, man.Docs, man.TTLDocs)
	}
	if _, err := keys.Get(ctx, man.Hidden[0], nil); err != nil || !strings.Contains(man.Hidden[0], "/_migrations/gw/0001_initial") {
		t.Fatalf("hidden ledger %v: %v", man.Hidden, err)
	}
	if len(man.Published) == 0 || len(man.Published) == len(man.Buckets) {
		t.Fatalf("%d of %d buckets published: want some", len(man.Published), len(man.Buckets))
	}
	r, err := keys.Get(ctx, man.Published[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Published bool }
	if json.Unmarshal([]byte(r.Node.Value), &b); !b.Published {
		t.Fatalf("published bucket reads %s", r.Node.Value)
	}
	if n, _ := leaves(t, keys, "/epochs"); n != 400 || man.V2EpochKeys != 400 {
		t.Fatalf("v2 epochs %d, manifest %d", n, man.V2EpochKeys)
	}
	// The v2 keys have the v3 form: nodelocal ids are node-qualified.
	if _, err := keys.Get(ctx, "/epochs/chocks-idx/node-2/0", nil); err != nil {
		t.Fatalf("node-qualified v2 epoch: %v", err)
	}

	// Storage holds exactly the manifest's objects and bad entries.
	var reach, garbage int
	names := map[string]bool{}
	for o := range man.Objects() {
		if o.Reachable {
			reach++
		} else {
			garbage++
		}
		names[o.Path] = true
	}
	if reach == 0 || garbage == 0 || reach != man.Reachable() {
		t.Fatalf("%d reachable (%d counted), %d garbage: want both", reach, man.Reachable(), garbage)
	}
	if len(names) != 400 {
		t.Fatalf("%d distinct paths for 400 objects", len(names))
	}
	checkReachable(t, keys, man)
	for _, node := range man.Nodes {
		l := cfg.Layout.Node(node)
		for _, sc := range libmap.Scopes() {
			if !sc.Nodelocal() && node != man.Nodes[0] {
				continue
			}
			var tally composer.Tally
			if err := l.Scan(ctx, sc, func(e composer.Entry) error { tally.Add(e); return nil }); err != nil {
				t.Fatal(err)
			}
			want, bad := man.Count(sc, ""), 0
			if sc.Nodelocal() {
				want = man.Count(sc, node)
			}
			for _, b := range man.Bad {
				if b.Scope == sc && (!sc.Nodelocal() || b.Node == node) {
					bad++
				}
			}
			if int(tally.Objects) != want || int(tally.SkippedTotal()) != bad {
				t.Fatalf("%s %s: scan %d objects %v, manifest %d objects %d bad", node, sc, tally.Objects, tally.Skipped, want, bad)
			}
			if sc == libmap.MapsUUID && tally.MissingRefs != 1 {
				t.Fatalf("%s: %d missing chocks, the seed plants 1", node, tally.MissingRefs)
			}
		}
	}
}

func TestSeedIsDeterministicAndRefusesNonEmpty(t *testing.T) {
	m := embed.NewTestMember(t)
	keys := newV2(t, m.Endpoints())
	ctx := context.Background()
	run := func(prefix, epochs string, force bool) (*seed.Manifest, error) {
		return seed.Run(ctx, keys, seed.Config{Docs: 50, Objects: 60, Nodes: seed.Nodes(1), Seed: 3,
			GWPrefix: prefix, V2Epochs: epochs, Force: force, Layout: seed.Layout{Dir: t.TempDir()}})
	}
	a, err := run("/a/gw", "/a/epochs", false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := run("/b/gw", "/b/epochs", false)
	if err != nil {
		t.Fatal(err)
	}
	names := func(m *seed.Manifest) []string {
		var s []string
		for o := range m.Objects() {
			s = append(s, o.ID()+map[bool]string{true: "+", false: "-"}[o.Reachable])
		}
		return s
	}
	if !reflect.DeepEqual(names(a), names(b)) || a.TTLDocs != b.TTLDocs || len(a.Published) != len(b.Published) {
		t.Fatal("the same seed gave two installations")
	}
	va, _ := keys.Get(ctx, "/a/gw/buckets/bucket-0000", nil)
	vb, _ := keys.Get(ctx, "/b/gw/buckets/bucket-0000", nil)
	if va.Node.Value != vb.Node.Value {
		t.Fatal("the same seed gave two bucket documents")
	}

	if _, err := run("/a/gw", "/c/epochs", false); !errors.Is(err, seed.ErrNotEmpty) {
		t.Fatalf("seeding a non-empty prefix: %v", err)
	}
	if _, err := run("/c/gw", "/a/epochs", false); !errors.Is(err, seed.ErrNotEmpty) {
		t.Fatalf("seeding a non-empty epochs dir: %v", err)
	}
	if _, err := run("/a/gw", "/a/epochs", true); err != nil {
		t.Fatalf("--force: %v", err)
	}
}

// checkReachable checks the manifest's reachability against what is
// written: the reachable maps-ca are those the Gateway's versions name,
// every maps-uuid is reachable, and a chock is reachable exactly when a
// reachable map of its root lists it.
func checkReachable(t *testing.T, keys clientv2.KeysAPI, man *seed.Manifest) {
	t.Helper()
	resp, err := keys.Get(context.Background(), man.GWPrefix+"/versions", &clientv2.GetOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	var walk func(*clientv2.Node)
	walk = func(nd *clientv2.Node) {
		var v struct{ Map string }
		if !nd.Dir && json.Unmarshal([]byte(nd.Value), &v) == nil {
			named[v.Map] = true
		}
		for _, c := range nd.Nodes {
			walk(c)
		}
	}
	walk(resp.Node)
	listed := map[string]bool{} // scope/node/name of the chocks reachable maps list
	for o := range man.Objects() {
		if !o.Scope.IsMap() {
			continue
		}
		if want := o.Scope == libmap.MapsUUID || named["maps-ca/"+o.Name]; o.Reachable != want {
			t.Fatalf("%s: reachable %v, want %v", o.Path, o.Reachable, want)
		}
		if !o.Reachable {
			continue
		}
		refs, err := composer.ReadMap(o.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range refs {
			listed[string(r.Scope)+"/"+o.Node+"/"+r.Name] = true
		}
	}
	if len(named) != man.Versions || len(named) == 0 {
		t.Fatalf("versions name %d maps, manifest %d versions", len(named), man.Versions)
	}
	for o := range man.Objects() {
		if !o.Scope.IsMap() && o.Reachable != listed[string(o.Scope)+"/"+o.Node+"/"+o.Name] {
			t.Fatalf("%s: reachable %v, listed by a reachable map %v", o.Path, o.Reachable, !o.Reachable)
		}
	}
}

// Above V2EpochMax objects the v2 epoch cache holds every k-th object's
// key, and the manifest says which.
func TestSeedSamplesTheV2EpochCacheAboveItsCap(t *testing.T) {
	m := embed.NewTestMember(t)
	keys := newV2(t, m.Endpoints())
	man, err := seed.Run(context.Background(), keys, seed.Config{Objects: 400, V2EpochMax: 150, Nodes: seed.Nodes(2), Seed: 4, Layout: seed.Layout{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if man.V2EpochEvery != 3 || man.V2EpochKeys != 134 {
		t.Fatalf("every %d-th object, %d keys; want every 3rd, 134", man.V2EpochEvery, man.V2EpochKeys)
	}
	if n, _ := leaves(t, keys, "/epochs"); n != man.V2EpochKeys {
		t.Fatalf("v2 holds %d epoch keys, the manifest says %d", n, man.V2EpochKeys)
	}
	i := 0
	for o := range man.Objects() {
		_, err := keys.Get(context.Background(), "/epochs/"+string(o.Scope)+"/"+o.ID(), nil)
		if has := err == nil; has != man.HasV2Epoch(i) {
			t.Fatalf("object %d %s: v2 epoch %v, manifest says %v (%v)", i, o.ID(), has, man.HasV2Epoch(i), err)
		}
		i++
	}
}
