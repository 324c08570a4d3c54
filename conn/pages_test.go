package conn_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

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
