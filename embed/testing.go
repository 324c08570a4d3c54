package embed

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rokup/rokup/conn"
)

// NewTestMember starts a single member on free loopback ports in a
// temporary dir, stopped when the test ends. fsync is off: tests are about
// behaviour, not durability.
func NewTestMember(t testing.TB) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var m *Member
	for attempt := 1; ; attempt++ {
		ports, err := FreePorts(2)
		if err != nil {
			t.Fatal(err)
		}
		m, err = Start(ctx, Config{
			Name:      "test",
			DataDir:   t.TempDir(),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
			NoFsync:   true,
		})
		if err == nil {
			break
		}
		if !IsAddrInUse(err) || attempt == 3 {
			t.Fatal(err)
		}
	}
	t.Cleanup(m.Close)
	return m
}

// NewTestTLSMember is NewTestMember serving clients over TLS only, with a
// client certificate required: it returns the member, its PKI (whose
// client certificate is root's) and another CA's, for wrong-CA cases.
func NewTestTLSMember(t testing.TB) (m *Member, pki, other *PKI) {
	t.Helper()
	dir := t.TempDir()
	pki, err := NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if other, err = NewPKI(filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	ports, err := FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err = Start(ctx, Config{
		Name:      "test",
		DataDir:   filepath.Join(dir, "data"),
		ClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		NoFsync:   true,
		TLS:       &TLS{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, TrustedCAFile: pki.CAFile, ClientCertAuth: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, pki, other
}

// NewTestCluster starts an n-member cluster in a temporary dir, stopped when
// the test ends.
func NewTestCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, ClusterConfig{Size: n, Dir: t.TempDir(), NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// NewTestClient returns a v3 client of endpoints, closed when the test ends.
func NewTestClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        5 * time.Second,
		MaxCallSendMsgSize: 16 << 20,
		MaxCallRecvMsgSize: 64 << 20,
		Logger:             zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// NewTestV2Client returns a v2 client of endpoints, as the commands make
// it (conn.V2). Idle connections are closed when the test ends, so they
// never hold up a member's shutdown (etcd's listener waits for a dialed
// connection's first request).
func NewTestV2Client(t testing.TB, endpoints []string) clientv2.Client {
	t.Helper()
	c, err := conn.V2(conn.Config{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.CloseIdleV2)
	return c
}

// NewTestV2 returns the v2 keys API of NewTestV2Client, as the commands
// make it (conn.NewKeysAPI, so it has Keys.Read).
func NewTestV2(t testing.TB, endpoints []string) clientv2.KeysAPI {
	t.Helper()
	return conn.NewKeysAPI(NewTestV2Client(t, endpoints))
}
