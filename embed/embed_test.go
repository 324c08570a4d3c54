package embed_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

func TestMemberServesV2AndV3AndKeepsDataAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ports, err := embed.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := embed.Config{
		Name:      "solo",
		DataDir:   dir,
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	}
	m, err := embed.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	v2 := embed.NewTestV2(t, m.Endpoints())
	if _, err := v2.Set(ctx, "/a", "1", nil); err != nil {
		t.Fatalf("v2 set: %v", err)
	}
	cli := embed.NewTestClient(t, m.Endpoints())
	if _, err := cli.Put(ctx, "/b", "2"); err != nil {
		t.Fatalf("v3 put: %v", err)
	}
	m.Close()

	m, err = embed.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r, err := v2.Get(ctx, "/a", nil)
	if err != nil || r.Node.Value != "1" {
		t.Fatalf("v2 /a after restart: %v %v", r, err)
	}
	g, err := cli.Get(ctx, "/b")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "2" {
		t.Fatalf("v3 /b after restart: %v %v", g, err)
	}
}

func TestClusterSurvivesMemberLossAndCatchesUp(t *testing.T) {
	ctx := context.Background()
	c := embed.NewTestCluster(t, 3)
	cli := embed.NewTestClient(t, c.Endpoints())
	v2 := embed.NewTestV2(t, c.Endpoints())
	if _, err := v2.Set(ctx, "/v2/before", "x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/v3/before", "x"); err != nil {
		t.Fatal(err)
	}

	c.Stop(0)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		if _, err := cli.Put(wctx, fmt.Sprintf("/v3/during/%d", i), "y"); err != nil {
			t.Fatalf("put with one member down: %v", err)
		}
	}
	if _, err := v2.Set(wctx, "/v2/during", "y", nil); err != nil {
		t.Fatalf("v2 set with one member down: %v", err)
	}

	if err := c.Restart(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Read from the restarted member alone, serializably, so the answer is
	// its own copy of the data: it has caught up when all keys are there.
	solo := embed.NewTestClient(t, c.Member(0).Endpoints())
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, err := solo.Get(ctx, "/v3/", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithCountOnly())
		if err == nil && g.Count == 21 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted member did not catch up: %v %v", g, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	soloV2 := embed.NewTestV2(t, c.Member(0).Endpoints())
	if r, err := soloV2.Get(ctx, "/v2/during", &clientv2.GetOptions{Quorum: false}); err != nil || r.Node.Value != "y" {
		t.Fatalf("restarted member v2 read: %v %v", r, err)
	}
}

func TestTLSAndAuth(t *testing.T) {
	ctx := context.Background()
	m, pki, other := embed.NewTestTLSMember(t)

	good := conn.Config{Endpoints: m.Endpoints(), CACert: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey, DialTimeout: 3 * time.Second}
	admin, err := conn.V3(ctx, good)
	if err != nil {
		t.Fatalf("right certificate refused: %v", err)
	}
	defer admin.Close()
	v2admin, err := conn.V2(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := embed.EnableAuth(ctx, admin, v2admin, "rootpw", map[string]string{"rok": "s3cret"}); err != nil {
		t.Fatal(err)
	}

	withUser := good
	withUser.User = "rok:s3cret"
	cli, err := conn.V3(ctx, withUser)
	if err != nil {
		t.Fatalf("right credentials refused: %v", err)
	}
	if _, err := cli.Put(ctx, "/rok/x", "1"); err != nil {
		t.Fatalf("authorised put: %v", err)
	}
	cli.Close()
	v2c, _ := conn.V2(withUser)
	if _, err := clientv2.NewKeysAPI(v2c).Set(ctx, "/rok/y", "1", nil); err != nil {
		t.Fatalf("authorised v2 set: %v", err)
	}
	// Keys.Read makes its own requests: the same TLS and credentials.
	if n, _, err := conn.NewKeysAPI(v2c).(*conn.Keys).Read(ctx, "/rok", true, 1<<20); err != nil || len(n.Nodes) == 0 {
		t.Fatalf("authorised v2 subtree read: %v", err)
	}

	cases := []struct {
		name string
		cfg  conn.Config
		want string
	}{
		{"wrong password", func() conn.Config { c := good; c.User = "rok:nope"; return c }(), "authentication failed"},
		{"missing client cert", func() conn.Config { c := good; c.Cert, c.Key = "", ""; c.User = "rok:s3cret"; return c }(), "certificate"},
		{"wrong CA", func() conn.Config { c := good; c.CACert = other.CAFile; c.User = "rok:s3cret"; return c }(), "certificate signed by unknown authority"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := conn.V3(ctx, tc.cfg)
			if err == nil {
				cli.Close()
				t.Fatal("connected with bad credentials")
			}
			t.Logf("%s: %v", tc.name, err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}

	// v2 with a wrong password is refused too: auth covers the legacy store.
	bad := good
	bad.User = "rok:nope"
	v2bad, _ := conn.V2(bad)
	if _, err := clientv2.NewKeysAPI(v2bad).Set(ctx, "/rok/z", "1", nil); err == nil {
		t.Fatal("v2 write with a wrong password succeeded")
	}
	if _, _, err := conn.NewKeysAPI(v2bad).(*conn.Keys).Read(ctx, "/rok", true, 0); err == nil {
		t.Fatal("v2 subtree read with a wrong password succeeded")
	} else {
		t.Logf("v2 subtree read with a wrong password: %v", err)
	}
}

func TestUnreachableEndpointFailsFast(t *testing.T) {
	_, err := conn.V3(context.Background(), conn.Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 2 * time.Second})
	if !errors.Is(err, conn.ErrUnreachable) {
		t.Fatalf("want ErrUnreachable, got %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error does not name the endpoint: %v", err)
	}
}
