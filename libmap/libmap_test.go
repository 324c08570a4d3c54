package libmap_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/libmap"
)

func newCache(t testing.TB) (*libmap.Cache, *clientv3.Client) {
	t.Helper()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	return libmap.New(cli), cli
}

func value(t testing.TB, cli *clientv3.Client, key string) (string, bool) {
	t.Helper()
	r, err := cli.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) == 0 {
		return "", false
	}
	return string(r.Kvs[0].Value), true
}

func TestParseScopeListsValidScopes(t *testing.T) {
	for _, s := range []string{"maps-uuid", "chocks-idx", "maps-ca", "chocks-ca"} {
		if sc, err := libmap.ParseScope(s); err != nil || string(sc) != s {
			t.Fatalf("ParseScope(%q) = %q, %v", s, sc, err)
		}
	}
	_, err := libmap.ParseScope("maps")
	if !errors.Is(err, libmap.ErrUnknownScope) || !strings.Contains(err.Error(), "maps-uuid, chocks-idx, maps-ca, chocks-ca") {
		t.Fatalf("unknown scope error %v does not list the valid ones", err)
	}
	if id := libmap.ChocksIdx.ID("node-1", "42"); id != "node-1/42" {
		t.Fatalf("nodelocal id %q", id)
	}
	if id := libmap.MapsCA.ID("node-1", "ab12"); id != "ab12" {
		t.Fatalf("CA id %q", id)
	}
}

func TestCurrentIsCreatedOnceAsOne(t *testing.T) {
	c, cli := newCache(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]uint64, 8)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			e, err := c.Current(ctx)
			if err != nil {
				t.Error(err)
			}
			got[i] = e
		}(i)
	}
	wg.Wait()
	for _, e := range got {
		if e != 1 {
			t.Fatalf("racing nodes saw epochs %v, want all 1", got)
		}
	}
	if v, _ := value(t, cli, "/libmap/epoch"); v != "1" {
		t.Fatalf("/libmap/epoch = %q", v)
	}
}

func TestAdvanceMovesOncePerCall(t *testing.T) {
	c, _ := newCache(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Advance(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if e, _ := c.Current(ctx); e != 6 {
		t.Fatalf("after 5 concurrent advances from 1, epoch %d", e)
	}
}

func TestCurrentRejectsMalformedEpoch(t *testing.T) {
	c, cli := newCache(t)
	if _, err := cli.Put(context.Background(), "/libmap/epoch", "seven"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Current(context.Background()); !errors.Is(err, libmap.ErrBadEpoch) {
		t.Fatalf("want ErrBadEpoch, got %v", err)
	}
}

func TestTouchExistingRestampsAndMissingWritesNothing(t *testing.T) {
	c, cli := newCache(t)
	ctx := context.Background()
	hash := strings.Repeat("ab", 32)
	if _, err := cli.Put(ctx, "/epochs/chocks-ca/"+hash, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Advance(ctx); err != nil { // a GC started: epoch 2
		t.Fatal(err)
	}
	exists, err := c.Touch(ctx, libmap.ChocksCA, "", hash)
	if err != nil || !exists {
		t.Fatalf("touch of a stamped chock: exists=%v err=%v", exists, err)
	}
	if v, _ := value(t, cli, "/epochs/chocks-ca/"+hash); v != "2" {
		t.Fatalf("touched chock holds epoch %q, want the current 2", v)
	}

	before, _ := cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	missing := strings.Repeat("cd", 32)
	exists, err = c.Touch(ctx, libmap.ChocksCA, "", missing)
	if err != nil || exists {
		t.Fatalf("touch of an unknown chock: exists=%v err=%v", exists, err)
	}
	after, _ := cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if _, ok := value(t, cli, "/epochs/chocks-ca/"+missing); ok || after.Header.Revision != before.Header.Revision {
		t.Fatalf("touch of a missing object wrote something (revision %d → %d)", before.Header.Revision, after.Header.Revision)
	}

	// Nodelocal ids are node-qualified: the same index on two nodes is two objects.
	if _, err := cli.Put(ctx, "/epochs/chocks-idx/node-1/7", "1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Touch(ctx, libmap.ChocksIdx, "node-2", "7"); ok {
		t.Fatal("node-2's chock 7 answered exists because node-1 has one")
	}
	if ok, _ := c.Touch(ctx, libmap.ChocksIdx, "node-1", "7"); !ok {
		t.Fatal("node-1's chock 7 answered missing")
	}
}

// A touch racing with GC runs always lands with an epoch at least the one
// the last GC advanced to before the touch returned, and breaks the
// GC's deletion compare taken on an earlier read.
func TestTouchRacingAdvanceCarriesNewEpoch(t *testing.T) {
	c, cli := newCache(t)
	ctx := context.Background()
	const key = "/epochs/maps-ca/ff00"
	if _, err := cli.Put(ctx, key, "1"); err != nil {
		t.Fatal(err)
	}
	gcRead, ok, err := c.Get(ctx, libmap.MapsCA, "ff00")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 50; i++ {
			if _, err := c.Advance(ctx); err != nil {
				t.Error(err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 50; i++ {
			if ok, err := c.Touch(ctx, libmap.MapsCA, "", "ff00"); err != nil || !ok {
				t.Error(ok, err)
			}
		}
	}()
	wg.Wait()
	cur, _ := c.Current(ctx)
	if ok, err := c.Touch(ctx, libmap.MapsCA, "", "ff00"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	e, _, _ := c.Get(ctx, libmap.MapsCA, "ff00")
	if e.Epoch != cur {
		t.Fatalf("touch after the races stamped %d, current %d", e.Epoch, cur)
	}
	// The GC's deletion, guarded by its earlier read, must fail.
	resp, err := cli.Txn(ctx).If(c.Unchanged(gcRead)).Then(c.OpDelete(gcRead)).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("a sweep deleted a touched object (err %v)", err)
	}
}

// The racing order itself, driven deterministically: a GC advances the
// epoch to G after Touch read the current epoch E and before its
// transaction. The touch must land with G, not E: a GC that began at G
// collects anything stamped below G, and the composer was told the object
// exists.
func TestTouchOvertakenByAnAdvanceStampsTheNewEpoch(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := context.Background()
	gcCache := libmap.New(cli)
	hash := strings.Repeat("5a", 32)
	key := "/epochs/chocks-ca/" + hash
	if e, err := gcCache.Current(ctx); err != nil || e != 1 {
		t.Fatal(e, err)
	}
	if _, err := cli.Put(ctx, key, "1"); err != nil {
		t.Fatal(err)
	}
	var g uint64
	kv := &overtakingKV{KV: cli, epochKey: gcCache.EpochKey(), overtake: func() {
		var err error
		if g, err = gcCache.Advance(ctx); err != nil {
			t.Error(err)
		}
	}}
	exists, err := libmap.New(kv).Touch(ctx, libmap.ChocksCA, "", hash)
	if err != nil || !exists {
		t.Fatalf("touch of a stamped chock: exists=%v err=%v", exists, err)
	}
	if g != 2 {
		t.Fatalf("the GC's advance did not happen inside the touch (G = %d)", g)
	}
	if v, _ := value(t, cli, key); v != "2" {
		t.Fatalf("the touch overtaken by the advance to G=2 stamped %q: a GC that began at G collects it", v)
	}
}

// overtakingKV runs overtake once, right after the first read of the
// epoch key returned: whoever read it now holds an epoch that has moved.
type overtakingKV struct {
	clientv3.KV
	epochKey string
	overtake func()
	once     sync.Once
}

func (k *overtakingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	if err == nil && key == k.epochKey {
		k.once.Do(k.overtake)
	}
	return resp, err
}

func TestStampWritesCurrentEpochAndRerunOnlyReads(t *testing.T) {
	c, cli := newCache(t)
	ctx := context.Background()
	if _, err := c.Advance(ctx); err != nil { // epoch 2
		t.Fatal(err)
	}
	stamp := func(n int) libmap.StampStats {
		var last int64
		s, err := c.NewStamper(ctx, libmap.ChocksIdx, "node-1", libmap.StampConfig{MaxOps: 50, OnProgress: func(d int64) { last = d }})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if err := s.Add(fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		st, err := s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last != int64(n) {
			t.Fatalf("progress ended at %d of %d", last, n)
		}
		return st
	}
	st := stamp(1000)
	if st.Stamped != 1000 || st.AlreadyStamped != 0 || st.Epoch != 2 {
		t.Fatalf("first run %+v", st)
	}
	n, _ := c.Count(ctx, libmap.ChocksIdx, "node-1")
	if n != 1000 {
		t.Fatalf("%d epoch keys, want 1000", n)
	}
	if v, _ := value(t, cli, "/epochs/chocks-idx/node-1/999"); v != "2" {
		t.Fatalf("stamped %q", v)
	}
	// One stale key (an old epoch) and 200 new objects: only those are written.
	if _, err := cli.Put(ctx, "/epochs/chocks-idx/node-1/5", "1"); err != nil {
		t.Fatal(err)
	}
	rev0, _ := cli.Get(ctx, "/", clientv3.WithCountOnly())
	st = stamp(1200)
	if st.Stamped != 201 || st.AlreadyStamped != 999 {
		t.Fatalf("re-run %+v, want 201 stamped and 999 already stamped", st)
	}
	rev1, _ := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if revs := rev1.Header.Revision - rev0.Header.Revision; revs > 201 {
		t.Fatalf("re-run made %d revisions for 201 writes", revs)
	}
	if v, _ := value(t, cli, "/epochs/chocks-idx/node-1/5"); v != "2" {
		t.Fatalf("stale key holds %q after re-run", v)
	}
}

func TestStampRequiresNodeForNodelocalScope(t *testing.T) {
	c, _ := newCache(t)
	if _, err := c.NewStamper(context.Background(), libmap.MapsUUID, "", libmap.StampConfig{}); err == nil {
		t.Fatal("stamping maps-uuid without a node was accepted")
	}
}

func TestStampWithEndedTermFailsNotLeader(t *testing.T) {
	c, cli := newCache(t)
	ctx := context.Background()
	put, err := cli.Put(ctx, "/rok/upgrade/leader/x", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	g := fencing.NewGuard("/rok/upgrade/leader/x", put.Header.Revision)
	s, err := c.NewStamper(ctx, libmap.MapsCA, "", libmap.StampConfig{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "/rok/upgrade/leader/x"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := s.Add(fmt.Sprintf("%064x", i)); err != nil {
			break
		}
	}
	if _, err := s.Close(); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("want ErrNotLeader, got %v", err)
	}
	if n, _ := c.Count(ctx, libmap.MapsCA, ""); n != 0 {
		t.Fatalf("a deposed master stamped %d objects", n)
	}
}

func TestStampFailsWhenEpochMoves(t *testing.T) {
	c, _ := newCache(t)
	ctx := context.Background()
	s, err := c.NewStamper(ctx, libmap.ChocksCA, "", libmap.StampConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Add("aa")
	if _, err := c.Advance(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Close(); !errors.Is(err, libmap.ErrEpochMoved) {
		t.Fatalf("want ErrEpochMoved, got %v", err)
	}
	if n, _ := c.Count(ctx, libmap.ChocksCA, ""); n != 0 {
		t.Fatal("a stamp landed with an epoch the GC had moved past")
	}
}

func TestScanStreamsOneNodeInPages(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	c := libmap.New(cli, libmap.WithPageSize(7))
	ctx := context.Background()
	for _, node := range []string{"node-1", "node-10", "node-2"} {
		for i := 0; i < 20; i++ {
			if _, err := cli.Put(ctx, fmt.Sprintf("/epochs/maps-uuid/%s/u%02d", node, i), "3"); err != nil {
				t.Fatal(err)
			}
		}
	}
	var ids []string
	err := c.Scan(ctx, libmap.MapsUUID, "node-1", func(e libmap.Entry) error {
		if e.Epoch != 3 || e.ModRevision == 0 || e.Node() != "node-1" {
			t.Fatalf("entry %+v", e)
		}
		ids = append(ids, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 20 || ids[0] != "node-1/u00" || ids[19] != "node-1/u19" {
		t.Fatalf("scan of node-1 gave %d ids: %v", len(ids), ids)
	}
	all := 0
	if err := c.Scan(ctx, libmap.MapsUUID, "", func(libmap.Entry) error { all++; return nil }); err != nil || all != 60 {
		t.Fatalf("scan of the scope: %d, %v", all, err)
	}
}

// TestStampWritesEachWindowInKeyOrder adds names in a shuffled order and
// reads back, from the keys' mod revisions, the order in which they were
// written: with one transaction in flight, each sort window must have gone
// to etcd in key order (scattered keys cost etcd's store a leaf page each).
func TestStampWritesEachWindowInKeyOrder(t *testing.T) {
	c, cli := newCache(t)
	ctx := context.Background()
	const n, window = 2000, 500
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint(i)
	}
	rand.New(rand.NewSource(1)).Shuffle(n, func(i, j int) { names[i], names[j] = names[j], names[i] })
	s, err := c.NewStamper(ctx, libmap.ChocksIdx, "node-1", libmap.StampConfig{InFlight: 1, MaxOps: 50, SortWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if err := s.Add(name); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := s.Close(); err != nil || st.Stamped != n {
		t.Fatalf("stamped %+v, %v", st, err)
	}
	r, err := cli.Get(ctx, "/epochs/chocks-idx/node-1/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != n {
		t.Fatalf("%d keys, want %d", len(r.Kvs), n)
	}
	// One transaction's keys share a revision: order them by key.
	slices.SortStableFunc(r.Kvs, func(a, b *mvccpb.KeyValue) int {
		return cmp.Or(cmp.Compare(a.ModRevision, b.ModRevision), bytes.Compare(a.Key, b.Key))
	})
	for w := 0; w < n; w += window {
		got := r.Kvs[w : w+window]
		want := slices.Clone(names[w : w+window])
		slices.Sort(want)
		for i, kv := range got {
			if name := strings.TrimPrefix(string(kv.Key), "/epochs/chocks-idx/node-1/"); name != want[i] {
				t.Fatalf("window %d: write %d was %s, want %s (the window in key order)", w/window, i, name, want[i])
			}
		}
	}
}
