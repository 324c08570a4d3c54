package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/term"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/gateway"
)

// Flags are the flags shared by every command, with the names scripts use.
type Flags struct {
	Endpoints     string
	CACert        string
	Cert          string
	Key           string
	User          string
	Password      string
	DialTimeout   time.Duration
	GWPrefix      string
	Node          string
	NodelocalRoot string
	LocalRoot     string
	Output        string

	envVars []string
	warned  bool
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
	pf.StringVar(&f.User, "user", "", "etcd user as name:password, or a name alone to be asked for the password (or give --password)")
	pf.StringVar(&f.Password, "password", "", "etcd password (then --user is the name alone)")
	pf.DurationVar(&f.DialTimeout, "dial-timeout", conn.DefaultDialTimeout, "how long to wait for etcd to answer")
	pf.StringVar(&f.GWPrefix, "gw-prefix", gateway.DefaultPrefix, "prefix of the Gateway documents")
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

// Validate checks the flags whose values have a fixed set, and asks for
// the password of a --user given without one, as etcdctl does: on a
// terminal; anywhere else that is bad usage (a script must not hang).
func (f *Flags) Validate() error {
	if f.Output != "text" && f.Output != "json" {
		return Usagef("-o must be text or json, not %q", f.Output)
	}
	if f.User != "" && f.Password == "" && !strings.Contains(f.User, ":") {
		if !IsTerminal() {
			return Usagef("--user %q has no password: give --user name:password or --password, or run on a terminal to be asked", f.User)
		}
		pw, err := ReadPassword(fmt.Sprintf("Password for %s: ", f.User))
		if err != nil {
			return Usagef("--user %q: read the password: %v", f.User, err)
		}
		f.Password = pw
	}
	if f.Password != "" && f.User == "" {
		return Usagef("--password needs --user")
	}
	if (f.Cert == "") != (f.Key == "") {
		return Usagef("--cert and --key go together")
	}
	return nil
}

// IsTerminal and ReadPassword are how Validate asks for a password; tests
// replace them.
var (
	IsTerminal   = func() bool { return term.IsTerminal(int(os.Stdin.Fd())) }
	ReadPassword = func(prompt string) (string, error) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		return string(b), err
	}
)

// JSON reports whether -o json was asked for.
func (f *Flags) JSON() bool { return f.Output == "json" }

// Conn is the connection configuration the flags describe.
func (f *Flags) Conn() conn.Config {
	eps := conn.SplitEndpoints(f.Endpoints)
	if len(eps) == 0 {
		eps = conn.DefaultEndpoints(f.envVars...)
	}
	return conn.Config{Endpoints: eps, CACert: f.CACert, Cert: f.Cert, Key: f.Key, User: f.User, Password: f.Password, DialTimeout: f.DialTimeout}
}

// V3 connects a v3 client, failing within the dial timeout when etcd is
// down (at once when nothing listens). Credentials given to a server
// without authentication are not checked by it: a warning says so, as
// etcdctl's does.
func (f *Flags) V3(ctx context.Context) (*clientv3.Client, error) {
	cli, err := conn.V3(ctx, f.Conn())
	if err != nil {
		return nil, err
	}
	if f.User != "" && !f.warned {
		f.warned = true
		actx, cancel := context.WithTimeout(ctx, f.Conn().DialTimeout)
		st, err := cli.AuthStatus(actx)
		cancel()
		if err == nil && !st.Enabled {
			fmt.Fprintf(Stderr, "warning: --user %s given, but etcd at %s has authentication disabled: the credentials were not checked\n",
				strings.SplitN(f.User, ":", 2)[0], strings.Join(f.Conn().Endpoints, ","))
		}
	}
	return cli, nil
}

// Stderr is where warnings go; tests replace it.
var Stderr io.Writer = os.Stderr

// V2 builds a v2 client (it dials on first use).
func (f *Flags) V2() (clientv2.Client, error) {
	return conn.V2(f.Conn())
}
