package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// DefaultEndpoint is used when neither a flag nor the environment names one.
const DefaultEndpoint = "http://127.0.0.1:2379"

// DefaultDialTimeout bounds connecting to etcd.
const DefaultDialTimeout = 5 * time.Second

// ErrUnreachable is returned when no endpoint answers: nothing listens
// there, the name does not resolve, TLS fails, or no answer in time.
var ErrUnreachable = errors.New("etcd unreachable")

// ErrConfig wraps connection settings that cannot work whatever the server
// says (--cert without --key, a --user without a name): bad usage.
var ErrConfig = errors.New("bad connection settings")

// Config holds the connection flags (docs/design.md#command-lines).
type Config struct {
	Endpoints   []string
	CACert      string // --cacert
	Cert        string // --cert
	Key         string // --key
	User        string // --user name:password, or the name with Password
	Password    string // --password
	DialTimeout time.Duration
	Logger      *zap.Logger
}

// DefaultEndpoints resolves the endpoint default: the first non-empty of the
// named environment variables (comma-separated), then DefaultEndpoint.
func DefaultEndpoints(envVars ...string) []string {
	for _, v := range envVars {
		if s := strings.TrimSpace(os.Getenv(v)); s != "" {
			return SplitEndpoints(s)
		}
	}
	return []string{DefaultEndpoint}
}

// SplitEndpoints splits a comma-separated list, dropping blanks.
func SplitEndpoints(s string) []string {
	var eps []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

func (c Config) timeout() time.Duration {
	if c.DialTimeout > 0 {
		return c.DialTimeout
	}
	return DefaultDialTimeout
}

// credentials checks the settings both clients share and returns the user,
// the password and the TLS configuration (nil for plain HTTP).
func (c Config) credentials() (name, pw string, tlsCfg *tls.Config, err error) {
	if len(c.Endpoints) == 0 {
		return "", "", nil, fmt.Errorf("%w: no etcd endpoints given", ErrConfig)
	}
	if name, pw, err = c.userPass(); err != nil {
		return "", "", nil, err
	}
	tlsCfg, err = c.tlsConfig()
	return name, pw, tlsCfg, err
}

// userPass splits the credentials as etcdctl does: with --password the
// whole of --user is the name, otherwise --user is name:password.
func (c Config) userPass() (string, string, error) {
	if c.User == "" {
		if c.Password != "" {
			return "", "", fmt.Errorf("%w: --password needs --user", ErrConfig)
		}
		return "", "", nil
	}
	if c.Password != "" {
		return c.User, c.Password, nil
	}
	name, pw, ok := strings.Cut(c.User, ":")
	if !ok || name == "" {
		return "", "", fmt.Errorf("%w: --user must be name:password (or a name with --password)", ErrConfig)
	}
	return name, pw, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CACert == "" && c.Cert == "" && c.Key == "" {
		return nil, nil
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, fmt.Errorf("%w: --cert and --key go together", ErrConfig)
	}
	info := transport.TLSInfo{CertFile: c.Cert, KeyFile: c.Key, TrustedCAFile: c.CACert}
	cfg, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("TLS material: %w", err)
	}
	return cfg, nil
}

// V3 connects a v3 client and checks that etcd answers within the dial
// timeout. The error names the endpoints, so an operator knows what to fix.
func V3(ctx context.Context, c Config) (*clientv3.Client, error) {
	cli, err := NewV3(ctx, c)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	// clientv3.New does not dial eagerly; a cheap read proves the cluster
	// answers (and that the credentials are good) before any work starts.
	// gRPC retries a refused connection until the deadline and keeps the
	// reason to itself: a direct dial of every endpoint, alongside, tells
	// at once when none can answer, and why.
	pinged := make(chan error, 1)
	go func() {
		_, err := cli.Get(dctx, "/rok/ping", clientv3.WithCountOnly())
		pinged <- err
	}()
	probed := make(chan error, 1)
	go func() { probed <- c.probe(dctx) }()
	for {
		select {
		case err := <-pinged:
			if err != nil {
				cli.Close()
				return nil, c.describe(err)
			}
			return cli, nil
		case err := <-probed:
			probed = nil
			if err != nil {
				cancel()
				<-pinged
				cli.Close()
				return nil, err
			}
		}
	}
}

// probe dials every endpoint at once (and shakes hands on https ones). It
// returns nil as soon as one answers, or when one only times out (the
// read's deadline then says so); otherwise an ErrUnreachable naming the
// cause at each endpoint: nothing listens, the name does not resolve, TLS
// fails.
func (c Config) probe(ctx context.Context) error {
	tlsCfg, _ := c.tlsConfig()
	type result struct {
		ep  string
		err error
	}
	results := make(chan result, len(c.Endpoints))
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, ep := range c.Endpoints {
		go func(ep string) { results <- result{ep, dialOnce(pctx, ep, tlsCfg)} }(ep)
	}
	var causes []string
	for range c.Endpoints {
		r := <-results
		if r.err == nil || errors.Is(r.err, errUnprobed) || timedOut(r.err) {
			return nil
		}
		causes = append(causes, r.ep+": "+cause(r.err))
	}
	return fmt.Errorf("%w: %s", ErrUnreachable, strings.Join(causes, "; "))
}

var errUnprobed = errors.New("not probed")

// dialOnce opens one connection to ep as the client would, and closes it.
func dialOnce(ctx context.Context, ep string, tlsCfg *tls.Config) error {
	host, secure := ep, false
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		switch u.Scheme {
		case "http":
			host = u.Host
		case "https":
			host, secure = u.Host, true
		default:
			return errUnprobed // unix sockets and the like
		}
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return errUnprobed
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	defer nc.Close()
	if !secure {
		return nil
	}
	cfg := &tls.Config{}
	if tlsCfg != nil {
		cfg = tlsCfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(host)
	}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return &tlsError{err}
	}
	return nil
}

type tlsError struct{ err error }

func (e *tlsError) Error() string { return e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || (errors.As(err, &ne) && ne.Timeout())
}

// cause is the operator's words for why a dial failed.
func cause(err error) string {
	var dnsErr *net.DNSError
	var te *tlsError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("TLS handshake failed: %v (check --cacert, --cert and --key)", te.err)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("DNS lookup of %q failed: %v (check the host name in --endpoints)", dnsErr.Name, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens there: is etcd running? check --endpoints)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Sprintf("%v (no route: check --endpoints and the network)", err)
	}
	return err.Error()
}

// NewV3 builds a v3 client without waiting for etcd: for a daemon that
// starts before its etcd does and retries on its own. The client lives
// until Close or until ctx ends.
func NewV3(ctx context.Context, c Config) (*clientv3.Client, error) {
	name, pw, tlsCfg, err := c.credentials()
	if err != nil {
		return nil, err
	}
	lg := c.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.timeout(),
		TLS:         tlsCfg,
		Username:    name,
		Password:    pw,
		Logger:      lg,
		Context:     ctx,
		// Large Gateway documents travel in batches of up to 1.5 MiB.
		MaxCallSendMsgSize: 16 << 20,
		MaxCallRecvMsgSize: 64 << 20,
		// Keep the connection alive through leader changes and pauses.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		DialOptions:          []grpc.DialOption{v3CodecOption()},
	})
	if err != nil {
		return nil, c.describe(err)
	}
	return cli, nil
}

func (c Config) describe(err error) error {
	eps := strings.Join(c.Endpoints, ",")
	if errors.Is(err, context.DeadlineExceeded) {
		// gRPC retries a failed TLS handshake until the deadline and keeps
		// the reason to itself; one direct handshake recovers it.
		if why := c.tlsProblem(); why != nil && !timedOut(why) {
			return fmt.Errorf("%w: TLS with %s failed: %v (check --cacert, --cert and --key)", ErrUnreachable, eps, why)
		}
		return fmt.Errorf("%w: timeout: no answer from %s within %s (a firewall dropping packets, or etcd hung? check --endpoints and the TLS flags)", ErrUnreachable, eps, c.timeout())
	}
	return fmt.Errorf("etcd at %s: %w", eps, err)
}

// tlsProblem handshakes with the first https endpoint and returns why that
// fails, or nil when it works or TLS is not in use.
func (c Config) tlsProblem() error {
	cfg, err := c.tlsConfig()
	if err != nil || len(c.Endpoints) == 0 {
		return err
	}
	u, err := url.Parse(c.Endpoints[0])
	if err != nil || u.Scheme != "https" {
		return nil
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.ServerName = u.Hostname()
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", u.Host, cfg)
	if err != nil {
		return err
	}
	// The server checks the client certificate after the handshake: a
	// read shows whether it kept the connection.
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	conn.Close()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}

// V2 builds a client of the legacy v2 API. It does not dial; the first
// request fails with a clear error when etcd is down or v2 is disabled
// (see V2Error).
func V2(c Config) (clientv2.Client, error) {
	name, pw, tlsCfg, err := c.credentials()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:       tlsCfg,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   c.timeout(),
		ResponseHeaderTimeout: 30 * time.Second,
	}
	trackTransport(tr)
	cli, err := clientv2.New(clientv2.Config{
		Endpoints:               c.Endpoints,
		Transport:               tr,
		Username:                name,
		Password:                pw,
		HeaderTimeoutPerRequest: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd v2 at %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	vc := &v2Client{Client: cli, tr: tr, user: name, pw: pw}
	for _, e := range c.Endpoints {
		u, err := url.Parse(e)
		if err != nil {
			return nil, fmt.Errorf("etcd v2 endpoint %q: %w", e, err)
		}
		vc.endpoints = append(vc.endpoints, *u)
	}
	return vc, nil
}

// ErrV2Disabled is returned when etcd answers but does not serve the v2 API.
var ErrV2Disabled = errors.New("the etcd v2 API is not enabled on the server (start etcd with --enable-v2=true, or use rokup's embedded etcd)")

// V2Error turns a v2 client error into one an operator can act on: a 404 on
// the /v2 path itself means the server runs without --enable-v2.
func V2Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	// etcd 3.5 answers a v2 request with a 404 when v2 is off; etcd 3.4
	// answers with a body the v2 client cannot parse.
	if strings.Contains(msg, "404 page not found") || strings.Contains(msg, "unexpected status code 404") ||
		strings.Contains(msg, "response is invalid json") {
		return fmt.Errorf("%w: %v", ErrV2Disabled, err)
	}
	var ce *clientv2.ClusterError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %s", ErrUnreachable, ce.Detail())
	}
	return err
}

var (
	transportsMu sync.Mutex
	transports   []*http.Transport
)

func trackTransport(tr *http.Transport) {
	transportsMu.Lock()
	transports = append(transports, tr)
	transportsMu.Unlock()
}

// CloseIdleV2 closes the idle connections of every v2 client this process
// made. Call it before stopping an etcd member embedded in the same
// process: etcd's listener waits for a connection's first request, so a
// connection the HTTP client dialed but never used would hold up the
// member's shutdown.
func CloseIdleV2() {
	transportsMu.Lock()
	defer transportsMu.Unlock()
	for _, tr := range transports {
		tr.CloseIdleConnections()
	}
}
