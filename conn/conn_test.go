package conn_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

// Each way of not reaching etcd names its cause. The dial timeout is
// long: a refused connection, a name that does not resolve or a failed
// handshake must not wait for it (their message would say "timeout").
func TestUnreachableNamesTheCause(t *testing.T) {
	m := embed.NewTestMember(t) // plain http: an https client fails its handshake
	refused := closedPort(t)
	hung, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	for _, c := range []struct {
		name    string
		eps     []string
		timeout time.Duration
		want    string
	}{
		{"nothing listens", []string{"http://" + refused}, 20 * time.Second, "connection refused"},
		{"two endpoints, nothing listens at either", []string{"http://" + refused, "http://" + closedPort(t)}, 20 * time.Second, "connection refused"},
		{"a name that does not resolve", []string{"http://no-such-host.invalid:2379"}, 20 * time.Second, `DNS lookup of "no-such-host.invalid" failed`},
		{"https to a plain server", []string{strings.Replace(m.ClientURL(), "http://", "https://", 1)}, 20 * time.Second, "TLS handshake failed"},
		{"no answer", []string{"http://" + hung.Addr().String()}, 300 * time.Millisecond, "timeout: no answer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if strings.Contains(c.want, "DNS") {
				var de *net.DNSError
				if _, err := net.LookupHost("no-such-host.invalid"); !errors.As(err, &de) || !de.IsNotFound {
					t.Skipf("this resolver does not answer NXDOMAIN for .invalid (%v)", err)
				}
			}
			cli, err := conn.V3(context.Background(), conn.Config{Endpoints: c.eps, DialTimeout: c.timeout})
			if err == nil {
				cli.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, conn.ErrUnreachable) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want ErrUnreachable saying %q", err, c.want)
			}
		})
	}
	// One endpoint down among good ones is no error.
	cli, err := conn.V3(context.Background(), conn.Config{Endpoints: []string{"http://" + refused, m.ClientURL()}, DialTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cli.Close()
}

func TestBadSettingsAreErrConfig(t *testing.T) {
	for _, c := range []conn.Config{
		{Endpoints: []string{"http://127.0.0.1:2379"}, Cert: "c.pem"},
		{Endpoints: []string{"http://127.0.0.1:2379"}, User: ":pw"},
		{Endpoints: []string{"http://127.0.0.1:2379"}, Password: "pw"},
		{},
	} {
		if _, err := conn.V2(c); !errors.Is(err, conn.ErrConfig) {
			t.Errorf("%+v: got %v, want ErrConfig", c, err)
		}
	}
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
