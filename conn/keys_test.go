package conn_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

func TestKeysReadsOneLevelOrAWholeSubtree(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	keys := embed.NewTestV2(t, m.Endpoints())
	for i := 0; i < 30; i++ {
		if _, err := keys.Set(ctx, fmt.Sprintf("/t/dir/sub%d/doc", i%3), strings.Repeat("v", 100), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := keys.Set(ctx, "/t/dir/ключ 🚀+%", "unicode", &clientv2.SetOptions{TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	r, ok := keys.(*conn.Keys)
	if !ok {
		t.Fatalf("NewTestV2 gave a %T, not a *conn.Keys", keys)
	}

	one, idx, err := r.Read(ctx, "/t/dir", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if idx == 0 || len(one.Nodes) != 4 {
		t.Fatalf("one level: index %d, %d children, want 4", idx, len(one.Nodes))
	}
	for _, n := range one.Nodes {
		if n.Dir && len(n.Nodes) != 0 {
			t.Fatalf("one level read %s's children too", n.Key)
		}
		if !n.Dir && (n.Key != "/t/dir/ключ 🚀+%" || n.Value != "unicode" || n.Expiration == nil) {
			t.Fatalf("unicode document read as %q=%q (expiry %v)", n.Key, n.Value, n.Expiration)
		}
	}
	whole, _, err := r.Read(ctx, "/t/dir", true, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	docs := 0
	for _, n := range whole.Nodes {
		docs += len(n.Nodes)
	}
	if docs != 3 { // sub0..2 each hold one doc (overwritten ten times)
		t.Fatalf("whole subtree: %d documents under the sub dirs, want 3", docs)
	}

	// Over the limit: dropped, with ErrTooBig, whatever the subtree holds.
	if _, _, err := r.Read(ctx, "/t/dir", true, 200); !errors.Is(err, conn.ErrTooBig) {
		t.Fatalf("a 200-byte limit: want ErrTooBig, got %v", err)
	}
	// Missing: client/v2's own error, so IsKeyNotFound works.
	if _, idx, err := r.Read(ctx, "/t/nothing", true, 0); !clientv2.IsKeyNotFound(err) || idx != 0 {
		t.Fatalf("missing key: want key-not-found, got %v (index %d)", err, idx)
	}
}

func TestKeysReadTriesTheNextEndpointAndSaysWhenNoneAnswers(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	dead := "http://" + deadAddr(t)
	c, err := conn.V2(conn.Config{Endpoints: []string{dead, m.Endpoints()[0]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.CloseIdleV2)
	r := conn.NewKeysAPI(c).(*conn.Keys)
	if _, err := r.Set(ctx, "/t/a", "1", nil); err != nil {
		t.Fatal(err)
	}
	if n, _, err := r.Read(ctx, "/t", true, 0); err != nil || len(n.Nodes) != 1 {
		t.Fatalf("with one dead endpoint first: %v", err)
	}

	c2, _ := conn.V2(conn.Config{Endpoints: []string{dead}})
	_, _, err = conn.NewKeysAPI(c2).(*conn.Keys).Read(ctx, "/t", true, 0)
	if !errors.Is(err, conn.ErrUnreachable) || !strings.Contains(err.Error(), strings.TrimPrefix(dead, "http://")) {
		t.Fatalf("no endpoint answering: want ErrUnreachable naming %s, got %v", dead, err)
	}
}

func TestKeysReadSaysWhenTheServerHasNoV2(t *testing.T) {
	// Whatever answers /v2/keys without the v2 API (etcd 3.5 answers 404
	// page not found) is told apart from a missing key.
	srv := &http.Server{Handler: http.NotFoundHandler()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c, _ := conn.V2(conn.Config{Endpoints: []string{"http://" + l.Addr().String()}})
	_, _, err = conn.NewKeysAPI(c).(*conn.Keys).Read(context.Background(), "/rok/gw", true, 0)
	if !errors.Is(err, conn.ErrV2Disabled) {
		t.Fatalf("want ErrV2Disabled, got %v", err)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
