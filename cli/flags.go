package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
)

// Default prefixes of SPEC §3.
const DefaultGWPrefix = "/rok/gw"

// Flags are the flags shared by every command, with the names scripts use.
type Flags struct {
	Endpoints     string
	CACert        string
	Cert          string
	Key           string
	User          string
	DialTimeout   time.Duration
	GWPrefix      string
	Node          string
	NodelocalRoot string
	LocalRoot     string
	Output        string

	envVars []string
}

// AddFlags registers the shared flags as persistent flags of root. The
// endpoint default comes from the first set environment variable of envVars
// (ROK_ETCD_ENDPOINTS for most commands), then http://127.0.0.1:2379.
func AddFlags(root *cobra.Command, envVars ...string) *Flags {
	f := &Flags{envVars: envVars}
	host, _ := os.Hostname()
	pf := root.PersistentFlags()
	pf.StringVar(&f.Endpoints, "endpoints", "", fmt.Sprintf("etcd endpoints, comma-separated (default $%s, then %s)", envList(envVars), conn.DefaultEndpoint))
	pf.StringVar(&f.CACert, "cacert", "", "CA bundle to verify etcd's TLS certificate")
	pf.StringVar(&f.Cert, "cert", "", "client TLS certificate")
	pf.StringVar(&f.Key, "key", "", "client TLS key")
	pf.StringVar(&f.User, "user", "", "etcd user as name:password")
	pf.DurationVar(&f.DialTimeout, "dial-timeout", conn.DefaultDialTimeout, "how long to wait for etcd to answer")
	pf.StringVar(&f.GWPrefix, "gw-prefix", DefaultGWPrefix, "prefix of the Gateway documents")
	pf.StringVar(&f.Node, "node", host, "this node's name")
	pf.StringVar(&f.NodelocalRoot, "nodelocal-root", "", "root of this node's nodelocal (mutable) storage")
	pf.StringVar(&f.LocalRoot, "local-root", "", "root of the local (immutable, content-addressed) storage")
	pf.StringVarP(&f.Output, "output", "o", "text", "output format: text or json")
	return f
}

func envList(vars []string) string {
	s := ""
	for i, v := range vars {
		if i > 0 {
			s += ", then $"
		}
		s += v
	}
	return s
}

// Validate checks the flags whose values have a fixed set.
func (f *Flags) Validate() error {
	if f.Output != "text" && f.Output != "json" {
		return Usagef("-o must be text or json, not %q", f.Output)
	}
	return nil
}

// JSON reports whether -o json was asked for.
func (f *Flags) JSON() bool { return f.Output == "json" }

// Conn is the connection configuration the flags describe.
func (f *Flags) Conn() conn.Config {
	eps := conn.SplitEndpoints(f.Endpoints)
	if len(eps) == 0 {
		eps = conn.DefaultEndpoints(f.envVars...)
	}
	return conn.Config{Endpoints: eps, CACert: f.CACert, Cert: f.Cert, Key: f.Key, User: f.User, DialTimeout: f.DialTimeout}
}

// V3 connects a v3 client, failing within the dial timeout when etcd is down.
func (f *Flags) V3(ctx context.Context) (*clientv3.Client, error) {
	return conn.V3(ctx, f.Conn())
}

// V2 builds a v2 client (it dials on first use).
func (f *Flags) V2() (clientv2.Client, error) {
	return conn.V2(f.Conn())
}
