package conn_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

func TestPagerReadsTheRangeInPagesInKeyOrder(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	var want []string
	for i := 0; i < 25; i++ {
		k := fmt.Sprintf("/p/%02d", i)
		want = append(want, k)
		if _, err := cli.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"/o", "/p", "/q/0"} { // outside [/p/, /p0)
		if _, err := cli.Put(ctx, k, "x"); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Get(ctx, "/p/00")
	if err != nil {
		t.Fatal(err)
	}
	before := resp.Header.Revision
	if _, err := cli.Put(ctx, "/p/00", "changed"); err != nil {
		t.Fatal(err)
	}

	var got []string
	var sizes []int
	p := conn.NewPager(cli, "/p/", clientv3.GetPrefixRangeEnd("/p/"), 10, clientv3.WithRev(before))
	for p.More() {
		kvs, err := p.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(kvs))
		for _, kv := range kvs {
			got = append(got, string(kv.Key))
			if string(kv.Key) == "/p/00" && string(kv.Value) != "v" {
				t.Fatalf("/p/00 read as %q: the pager dropped WithRev", kv.Value)
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Fatalf("pages of %v keys, want 10, 10, 5", sizes)
	}

	// Again reads the page just read once more.
	p = conn.NewPager(cli, "/p/", clientv3.GetPrefixRangeEnd("/p/"), 20, clientv3.WithKeysOnly())
	first, err := p.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Again()
	again, err := p.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 20 || len(again) != 20 || string(again[0].Key) != "/p/00" || len(again[0].Value) != 0 {
		t.Fatalf("again: %d then %d keys, first %q=%q", len(first), len(again), again[0].Key, again[0].Value)
	}
	rest, err := p.Next(ctx)
	if err != nil || len(rest) != 5 || p.More() {
		t.Fatalf("after again: %d keys, more %v, err %v; want the last 5", len(rest), p.More(), err)
	}

	// An empty range is one empty page.
	p = conn.NewPager(cli, "/none/", clientv3.GetPrefixRangeEnd("/none/"), 10)
	if kvs, err := p.Next(ctx); err != nil || len(kvs) != 0 || p.More() {
		t.Fatalf("empty range: %d keys, more %v, err %v", len(kvs), p.More(), err)
	}
}

func TestWalkV2VisitsEveryDocumentBreadthFirst(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	keys := embed.NewTestV2(t, m.Endpoints())
	for _, k := range []string{"/w/b/deep/x", "/w/a", "/w/b/y", "/w/c/z", "/w/_hidden/h"} {
		if _, err := keys.Set(ctx, k, "v", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := keys.Set(ctx, "/w/empty", "", &clientv2.SetOptions{Dir: true}); err != nil {
		t.Fatal(err)
	}
	walk := func(dir string) ([]string, error) {
		var got []string
		err := conn.WalkV2(ctx, keys, dir, func(leaves []*clientv2.Node) error {
			if len(leaves) == 0 {
				t.Fatalf("fn called with no documents")
			}
			for _, n := range leaves {
				got = append(got, n.Key)
			}
			return nil
		})
		return got, err
	}
	got, err := walk("/w")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/w/a", "/w/b/y", "/w/c/z", "/w/b/deep/x"}; !slices.Equal(got, want) {
		t.Fatalf("walked %v, want %v (level by level, sorted, no hidden name)", got, want)
	}
	if got, err := walk("/w/a"); err != nil || !slices.Equal(got, []string{"/w/a"}) {
		t.Fatalf("a document walked alone: %v, %v", got, err)
	}
	if got, err := walk("/missing"); err != nil || len(got) != 0 {
		t.Fatalf("a missing dir: %v, %v", got, err)
	}
	stop := errors.New("stop")
	if err := conn.WalkV2(ctx, keys, "/w", func([]*clientv2.Node) error { return stop }); err != stop {
		t.Fatalf("fn's error came back as %v", err)
	}
}

// countingKV answers range reads from sorted keys the way etcd 3.5 does,
// and counts what etcd would visit: every key of the requested range,
// whatever the limit (treeIndex.Revisions counts them all).
type countingKV struct {
	clientv3.KV
	keys    []string // sorted
	visited int
	reads   int
}

func (f *countingKV) Get(_ context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	op := clientv3.OpGet(key, opts...)
	end := string(op.RangeBytes())
	lo, _ := slices.BinarySearch(f.keys, key)
	hi := len(f.keys)
	if end != "\x00" {
		hi, _ = slices.BinarySearch(f.keys, end)
	}
	hi = max(hi, lo)
	f.reads++
	f.visited += hi - lo
	limit := limitOf(op)
	resp := &clientv3.GetResponse{Count: int64(hi - lo)}
	for _, k := range f.keys[lo:min(hi, lo+limit)] {
		resp.Kvs = append(resp.Kvs, &mvccpb.KeyValue{Key: []byte(k)})
	}
	resp.More = hi-lo > limit
	return resp, nil
}

// limit is the read's WithLimit, which clientv3.Op keeps unexported.
func limitOf(op clientv3.Op) int {
	return int(reflect.ValueOf(op).FieldByName("limit").Int())
}

// The windowed pager reads every key of the range once, in order, in full
// pages, whatever the keys look like; and etcd visits a few pages' keys
// per read, not the rest of the range: a scan's cost grows with its keys,
// not with their square over the page size.
func TestPagerCostGrowsWithTheKeysNotTheirSquare(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n, limit = 20_000, 100
	for name, gen := range map[string]func(i int) string{
		"uniform":    func(int) string { return fmt.Sprintf("/p/%08x", rng.Uint32()) },
		"sequential": func(i int) string { return fmt.Sprintf("/p/%08d", i) },
		// Gateway-like: nested names of many lengths, dense clusters.
		"nested": func(i int) string {
			return fmt.Sprintf("/p/bucket-%d/objects/%s", i%37, strings.Repeat("x", rng.IntN(40))+fmt.Sprint(i))
		},
		// Bytes anywhere, 0x00 and 0xff included, lengths 1 to 12.
		"binary": func(int) string {
			b := make([]byte, 1+rng.IntN(12))
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
			return "/p/" + string(b)
		},
		// Two dense clusters with a gap of almost the whole key space.
		"gap": func(i int) string {
			if i%2 == 0 {
				return fmt.Sprintf("/p/\x00%08d", i)
			}
			return fmt.Sprintf("/p/\xff%08d", i)
		},
	} {
		t.Run(name, func(t *testing.T) {
			set := map[string]bool{}
			for i := 0; len(set) < n; i++ {
				set[gen(i)] = true
			}
			keys := slices.Sorted(maps.Keys(set))
			outside := []string{"/o", "/p", "/q/0", "/p0"}
			f := &countingKV{keys: slices.Sorted(slices.Values(append(slices.Clone(keys), outside...)))}
			var got []string
			p := conn.NewPager(f, "/p/", clientv3.GetPrefixRangeEnd("/p/"), limit)
			for p.More() {
				kvs, err := p.Next(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(kvs) > limit || (len(kvs) < limit && p.More()) {
					t.Fatalf("a page of %d keys (limit %d) with more to come: pages are full but for the last", len(kvs), limit)
				}
				for _, kv := range kvs {
					got = append(got, string(kv.Key))
				}
			}
			if !slices.Equal(got, keys) {
				t.Fatalf("read %d keys, want the range's %d, in order, each once", len(got), len(keys))
			}
			// Paging [from, end) as etcd 3.5 counts it visits about
			// n²/(2·limit) keys, 2 000 000 here (100 a key), in n/limit
			// reads; windows visit a few pages' keys per read, and a
			// window too narrow costs a read more.
			if f.visited > 25*n {
				t.Errorf("etcd visited %d keys in %d reads to page %d: more than 25 per key", f.visited, f.reads, n)
			}
			if f.reads > 8*n/limit {
				t.Errorf("%d reads to page %d keys by %d: more than 8 per page", f.reads, n, limit)
			}
			t.Logf("%d keys in %d reads, %d visited", n, f.reads, f.visited)
		})
	}
}
