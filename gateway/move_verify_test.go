package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/embed"
)

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
