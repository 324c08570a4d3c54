package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
)

// On an etcd recent enough and a prefix that held only the ledger, the
// watch folded during the copy verifies the move: no read-back.
func TestWatchVerifiesTheMove(t *testing.T) {
	e := newEnv(t, small)
	rep, err := Move(ctxT(t), e.cli, e.kapi, MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.WatchVerify || !rep.FastVerify || rep.Checksum != expectedChecksum(e.store) {
		t.Fatalf("watch verify %v, fast verify %v, checksum %s (want %s)", rep.WatchVerify, rep.FastVerify, rep.Checksum, expectedChecksum(e.store))
	}
	e.assertMoved(t, false)
}

// afterCopied returns a client whose transactions call fn once key (any
// key under the prefix when empty) is in v3, with the move going on.
func afterCopied(t *testing.T, e *testEnv, key string, fn func(ctx context.Context) error) (*clientv3.Client, func() error) {
	c := embed.NewTestClient(t, e.eps)
	var once sync.Once
	var err error
	c.KV = &hookKV{KV: c.KV, key: key, fn: func() { once.Do(func() { err = fn(ctxT(t)) }) }}
	return c, func() error { return err }
}

// Another v3 writer under the prefix during the copy: the watch sees a
// key v2 does not hold and leaves the verification to the read-back, and
// the key fails the move.
func TestV3WriteUnderThePrefixDuringTheCopyIsCaughtByTheWatch(t *testing.T) {
	e := newEnv(t, small)
	stray := e.store.prefix + "/objects/written-by-someone-else"
	cli, werr := afterCopied(t, e, "", func(ctx context.Context) error {
		_, err := e.cli.Put(ctx, stray, "stray")
		return err
	})
	rep, err := Move(ctxT(t), cli, e.kapi, MoveOptions{})
	if werr() != nil {
		t.Fatal(werr())
	}
	if g, _ := e.cli.Get(ctxT(t), stray); len(g.Kvs) != 1 {
		t.Fatal("the stray write did not happen")
	}
	if rep.WatchVerify || rep.FastVerify {
		t.Fatalf("watch verify %v, fast verify %v with a stray v3 key under the prefix", rep.WatchVerify, rep.FastVerify)
	}
	// The read-back finds every v2 document in place, then the stray key,
	// which fails the move naming it.
	if !errors.Is(err, ErrExtra) || len(rep.V3OnlyKeys) != 1 || rep.V3OnlyKeys[0] != stray {
		t.Fatalf("move with a stray v3 write: %v (v3-only %v), want ErrExtra naming %s", err, rep.V3OnlyKeys, stray)
	}
}

// A v3 key changed after the copy wrote it, while the copy goes on: the
// watch sees a put over it, and the read-back fails the move naming it.
func TestV3KeyModifiedDuringTheCopyIsCaughtByTheWatch(t *testing.T) {
	e := newEnv(t, small)
	const copied = DefaultPrefix + "/objects/d03/s1/doc-00071"
	if _, ok := e.store.docs[copied]; !ok {
		t.Fatalf("the seed has no %s", copied)
	}
	cli, werr := afterCopied(t, e, copied, func(ctx context.Context) error {
		_, err := e.cli.Put(ctx, copied, "changed in v3")
		return err
	})
	rep, err := Move(ctxT(t), cli, e.kapi, MoveOptions{})
	if werr() != nil {
		t.Fatal(werr())
	}
	if rep.WatchVerify {
		t.Fatal("the watch verified a move whose key was changed in v3")
	}
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), copied) {
		t.Fatalf("want a verification failure naming %s, got %v", copied, err)
	}
}

// A compaction past the run's opening revision during the copy: the watch
// cannot tell what the prefix held then, and the read-back verifies.
func TestCompactionDuringTheCopyFallsBackToTheReadBack(t *testing.T) {
	e := newEnv(t, small)
	cli, werr := afterCopied(t, e, "", func(ctx context.Context) error {
		resp, err := e.cli.Get(ctx, "/")
		if err != nil {
			return err
		}
		_, err = e.cli.Compact(ctx, resp.Header.Revision)
		return err
	})
	rep, err := Move(ctxT(t), cli, e.kapi, MoveOptions{})
	if werr() != nil {
		t.Fatal(werr())
	}
	if err != nil || rep.WatchVerify || !rep.FastVerify || rep.Checksum != expectedChecksum(e.store) {
		t.Fatalf("watch verify %v, fast verify %v, checksum %s (want %s): %v", rep.WatchVerify, rep.FastVerify, rep.Checksum, expectedChecksum(e.store), err)
	}
}

// A resumed move finds documents under the prefix already: only a
// read-back sees those, so the watch stands aside.
func TestResumedMoveIsReadBack(t *testing.T) {
	e := newEnv(t, small)
	ctx, cancel := context.WithCancel(ctxT(t))
	cli, _ := afterCopied(t, e, "", func(context.Context) error { cancel(); return nil })
	if _, err := Move(ctx, cli, e.kapi, MoveOptions{}); err == nil {
		t.Fatal("the interrupted move succeeded")
	}
	rep, err := Move(ctxT(t), e.cli, e.kapi, MoveOptions{})
	if err != nil || rep.WatchVerify || !rep.FastVerify || rep.Identical == 0 {
		t.Fatalf("watch verify %v, fast verify %v, %d identical: %v", rep.WatchVerify, rep.FastVerify, rep.Identical, err)
	}
	e.assertMoved(t, false)
}

func TestAtLeast(t *testing.T) {
	for v, want := range map[string]bool{
		"3.5.35": true, "3.5.13": true, "3.6.0": true, "4.0.0": true,
		"3.5.12": false, "3.4.23": false, "3.4.99": false, "2.3.8": false, "": false, "3.5": false,
	} {
		if got := atLeast(v, watchMinVersion); got != want {
			t.Errorf("atLeast(%q) = %v, want %v", v, got, want)
		}
	}
}

// A read-back page holds as many documents as fit in its budget were they
// the largest read: a few 64 KiB blobs among small documents leave the
// pages large; a store of large documents gets small pages.
func TestReadBackPageLimit(t *testing.T) {
	cases := []struct {
		name  string
		sizes func(add func(int))
		want  func(int64) bool
	}{
		{"small documents", func(add func(int)) {
			for i := 0; i < 10000; i++ {
				add(600)
			}
		}, func(n int64) bool { return n == scanPageBytes/600 }},
		{"a few blobs among small documents", func(add func(int)) {
			for i := 0; i < 10000; i++ {
				add(600)
				if i%2500 == 0 {
					add(64 << 10)
				}
			}
		}, func(n int64) bool { return n == (scanPageBytes-4*(64<<10))/600+4 }},
		{"large documents", func(add func(int)) {
			for i := 0; i < 5000; i++ {
				add(64 << 10)
			}
		}, func(n int64) bool { return n == scanPageMin }},
		{"a few small documents", func(add func(int)) {
			for i := 0; i < 10; i++ {
				add(600)
			}
		}, func(n int64) bool { return n == scanPageMax }},
	}
	for _, tc := range cases {
		var l largest
		tc.sizes(l.add)
		if got := l.pageLimit(scanPageBytes); !tc.want(got) {
			t.Errorf("%s: page limit %d", tc.name, got)
		}
	}
}
