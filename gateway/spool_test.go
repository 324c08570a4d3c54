package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/embed"
)

func TestSpoolGivesBackWhatItWasGiven(t *testing.T) {
	s, err := newSpool(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	exp := time.Unix(1_700_000_000, 123456789)
	type doc struct {
		k, v string
		exp  *time.Time
	}
	in := []doc{{"/a", "", nil}, {"/ключ 🚀", strings.Repeat("v", 70000), &exp}, {"/b\x00c", "\xff\xfe", nil}}
	for _, d := range in {
		if err := s.add(d.k, d.v, d.exp); err != nil {
			t.Fatal(err)
		}
	}
	var out []doc
	if err := s.each(func(k, v string, e *time.Time) error {
		out = append(out, doc{k, v, e})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d documents back, want %d", len(out), len(in))
	}
	for i := range in {
		a, b := in[i], out[i]
		if a.k != b.k || a.v != b.v || (a.exp == nil) != (b.exp == nil) || (a.exp != nil && !a.exp.Equal(*b.exp)) {
			t.Fatalf("document %d: %q (%d bytes, %v) came back as %q (%d bytes, %v)", i, a.k, len(a.v), a.exp, b.k, len(b.v), b.exp)
		}
	}
	if err := s.add("/over", strings.Repeat("x", 1<<20), nil); err != errSpoolFull {
		t.Fatalf("a document past the bound: want errSpoolFull, got %v", err)
	}
}

func TestSpoolTruncatedIsAnErrorNotAShortCopy(t *testing.T) {
	s, err := newSpool(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for i := 0; i < 3; i++ {
		if err := s.add("/k", "value", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.f.Truncate(10); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = s.each(func(string, string, *time.Time) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "spool file") {
		t.Fatalf("a truncated spool read %d documents and returned %v", n, err)
	}
}

// The copy reads the count's spool, or v2 again when there is none, and
// either way moves the same bytes; the spool is gone afterwards.
func TestMoveWithAndWithoutTheSpool(t *testing.T) {
	cases := []struct {
		name    string
		opts    func(dir string) MoveOptions
		spooled bool
	}{
		{"spool", func(dir string) MoveOptions { return MoveOptions{SpoolDir: dir} }, true},
		{"no spool", func(dir string) MoveOptions { return MoveOptions{SpoolDir: dir, SpoolBytes: -1} }, false},
		{"spool too small", func(dir string) MoveOptions { return MoveOptions{SpoolDir: dir, SpoolBytes: 64 << 10} }, false},
		{"spool dir missing", func(dir string) MoveOptions { return MoveOptions{SpoolDir: filepath.Join(dir, "nope")} }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, small)
			dir := t.TempDir()
			rep, err := Move(ctxT(t), e.cli, e.kapi, tc.opts(dir))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Spooled != tc.spooled {
				t.Fatalf("spooled %v, want %v", rep.Spooled, tc.spooled)
			}
			if !rep.FastVerify {
				t.Fatal("v2 did not move, yet the move walked v2 again to verify")
			}
			if rep.Checksum != expectedChecksum(e.store) {
				t.Fatalf("checksum %s, want %s", rep.Checksum, expectedChecksum(e.store))
			}
			e.assertMoved(t, false)
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("left in the spool dir: %v", left)
			}
		})
	}
}

// A v3 key under the prefix that v2 does not hold makes the range
// checksum differ; the move then walks v2 again, finds every v2 document
// in place, and succeeds.
func TestV3OnlyKeyFallsBackToTheWalkAndPasses(t *testing.T) {
	e := newEnv(t, small)
	extra := e.store.prefix + "/objects/made-in-v3"
	if _, err := e.cli.Put(ctxT(t), extra, "v3 only"); err != nil {
		t.Fatal(err)
	}
	rep, err := Move(ctxT(t), e.cli, e.kapi, MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.FastVerify {
		t.Fatal("the range checksum matched with a v3-only key present")
	}
	if rep.Checksum != expectedChecksum(e.store) {
		t.Fatalf("checksum %s, want %s", rep.Checksum, expectedChecksum(e.store))
	}
}

// A TTL document that expires between the count and its turn in the copy
// is not written (its lease would be gone) and the move still verifies:
// it expired in v2 too.
func TestTTLDocumentExpiringBeforeItsCopyIsNotAFailure(t *testing.T) {
	m := embed.NewTestMember(t)
	kapi := embed.NewTestV2(t, m.Endpoints())
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := ctxT(t)
	for i := 0; i < 60; i++ {
		if _, err := kapi.Set(ctx, fmt.Sprintf("%s/d/a-%03d", DefaultPrefix, i), "plain", nil); err != nil {
			t.Fatal(err)
		}
	}
	// Last in its directory, so last in the spool.
	short := DefaultPrefix + "/d/z-session"
	if _, err := kapi.Set(ctx, short, "expiring", &clientv2.SetOptions{TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	rep, err := Move(ctx, cli, kapi, MoveOptions{MaxTxnOps: 8, InFlight: 1, Progress: func(p Progress) {
		if p.Phase == "copy" {
			once.Do(func() { time.Sleep(4 * time.Second) }) // the session expires meanwhile
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Expired != 1 || rep.Docs != 60 {
		t.Fatalf("docs %d, expired %d; want 60 and 1", rep.Docs, rep.Expired)
	}
	if g, _ := cli.Get(ctx, short); len(g.Kvs) != 0 {
		t.Fatalf("%s copied after it expired", short)
	}
}

// No Gateway store at all: nothing to move, and that is no error.
func TestMoveOfAnAbsentPrefix(t *testing.T) {
	m := embed.NewTestMember(t)
	rep, err := Move(ctxT(t), embed.NewTestClient(t, m.Endpoints()), embed.NewTestV2(t, m.Endpoints()), MoveOptions{Prefix: "/nothing/here"})
	if err != nil || rep.Docs != 0 {
		t.Fatalf("docs %d, error %v; want 0, nil", rep.Docs, err)
	}
}

// laggingKeys answers reads that need no quorum as a member still
// catching up would: with an index behind the cluster's. (Not a
// conn.Keys, so the walk reads a level at a time through Get.)
type laggingKeys struct {
	clientv2.KeysAPI
	behind uint64
}

func (k laggingKeys) Get(ctx context.Context, key string, opts *clientv2.GetOptions) (*clientv2.Response, error) {
	resp, err := k.KeysAPI.Get(ctx, key, opts)
	if err == nil && (opts == nil || !opts.Quorum) {
		resp.Index -= k.behind
	}
	return resp, err
}

func TestMoveRefusesReadsFromALaggingMember(t *testing.T) {
	e := newEnv(t, seedSize{docs: 100})
	lag := laggingKeys{KeysAPI: clientv2.NewKeysAPI(embed.NewTestV2Client(t, e.eps)), behind: 5}
	_, err := Move(ctxT(t), e.cli, lag, MoveOptions{})
	if !errors.Is(err, ErrLagging) || !strings.Contains(err.Error(), "behind the cluster's") {
		t.Fatalf("want ErrLagging, got %v", err)
	}
	if got := e.v3Docs(t); len(got) != 0 {
		t.Fatalf("a move over a lagging member wrote %d documents", len(got))
	}
	// Caught up, the same move goes through.
	if _, err := Move(ctxT(t), e.cli, laggingKeys{KeysAPI: lag.KeysAPI}, MoveOptions{}); err != nil {
		t.Fatal(err)
	}
}
