package embed

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// DefaultClientURL is where a single member listens unless told otherwise:
// the address the upgrade guide's etcdctl commands reach by default.
const DefaultClientURL = "http://127.0.0.1:2379"

// DefaultPeerURL is the single member's peer address.
const DefaultPeerURL = "http://127.0.0.1:2380"

// ErrNotReady is returned when a member does not become ready in time.
var ErrNotReady = errors.New("embed: etcd member not ready")

// TLS names the PEM files of one side of a member's TLS: the client side
// (Config.TLS) or the peer side (Config.PeerTLS), as etcd names them.
type TLS struct {
	CertFile      string
	KeyFile       string
	TrustedCAFile string
	// ClientCertAuth requires a certificate signed by TrustedCAFile from
	// the other end: a client, or on the peer side another member.
	ClientCertAuth bool
}

// Config describes one member.
type Config struct {
	Name      string // member name, unique in its cluster; default "default"
	DataDir   string // required
	ClientURL string // default DefaultClientURL (https when TLS is set)
	PeerURL   string // default DefaultPeerURL

	// InitialCluster is "name=peerURL,…"; empty means a one-member cluster.
	InitialCluster string
	// Existing joins or restarts into an existing cluster instead of
	// bootstrapping a new one. A member restarted on its data dir ignores it.
	Existing bool
	// ForceNewCluster restarts a member from its data dir as the only
	// member of a new cluster (etcd's --force-new-cluster): how a copy of
	// one member's data dir is served alone (rokup rehearse).
	ForceNewCluster bool

	TLS *TLS
	// PeerTLS encrypts and authenticates raft traffic between members
	// (every key, every document goes over it). The peer URLs are then
	// https; with ClientCertAuth a member without a certificate signed by
	// TrustedCAFile is refused.
	PeerTLS *TLS

	// NoFsync trades durability for speed; tests only.
	NoFsync bool
	// Logger receives etcd's logs; default a no-op logger. etcd is chatty at
	// info level, so the default level is warn.
	Logger   *zap.Logger
	LogLevel string

	// ReadyTimeout bounds the wait for the member to serve; default 60s.
	ReadyTimeout time.Duration
	// QuotaBytes is the backend size quota; 0 keeps etcd's default (2 GiB).
	QuotaBytes int64
	// SnapshotCount is how many applied entries etcd takes between
	// snapshots of its store; 0 keeps etcd's default (100 000).
	SnapshotCount uint64
	// Pprof serves Go's /debug/pprof on the client URL, as etcd's
	// --enable-pprof does: the bench's member, whose heap the bench
	// collects between paths (/debug/pprof/heap?gc=1) and which one can
	// profile while a path runs.
	Pprof bool
}

// Member is a running embedded etcd member.
type Member struct {
	cfg   Config
	etcd  *embed.Etcd
	close sync.Once
}

// Start starts a member and returns when it serves clients. Cancelling ctx
// abandons the wait and stops the member.
func Start(ctx context.Context, cfg Config) (*Member, error) {
	ecfg, err := cfg.etcdConfig()
	if err != nil {
		return nil, err
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		return nil, fmt.Errorf("embed: start member %s in %s: %w", ecfg.Name, cfg.DataDir, err)
	}
	timeout := cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return &Member{cfg: cfg, etcd: e}, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embed: member %s failed while starting: %w", ecfg.Name, err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("embed: member %s: %w", ecfg.Name, ctx.Err())
	case <-t.C:
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("%w: member %s after %s", ErrNotReady, ecfg.Name, timeout)
	}
}

func (c Config) etcdConfig() (*embed.Config, error) {
	if c.DataDir == "" {
		return nil, errors.New("embed: a data dir is required")
	}
	ecfg := embed.NewConfig()
	ecfg.Name = orDefault(c.Name, "default")
	ecfg.Dir = c.DataDir
	ecfg.EnableV2 = true
	ecfg.UnsafeNoFsync = c.NoFsync
	if c.QuotaBytes > 0 {
		ecfg.QuotaBackendBytes = c.QuotaBytes
	}
	ecfg.EnablePprof = c.Pprof
	if c.SnapshotCount > 0 {
		ecfg.SnapshotCount = c.SnapshotCount
	}
	clientDefault := DefaultClientURL
	if c.TLS != nil {
		clientDefault = "https://127.0.0.1:2379"
	}
	curl, err := url.Parse(orDefault(c.ClientURL, clientDefault))
	if err != nil {
		return nil, fmt.Errorf("embed: client URL: %w", err)
	}
	peerDefault := DefaultPeerURL
	if c.PeerTLS != nil {
		peerDefault = "https://127.0.0.1:2380"
	}
	purl, err := url.Parse(orDefault(c.PeerURL, peerDefault))
	if err != nil {
		return nil, fmt.Errorf("embed: peer URL: %w", err)
	}
	ecfg.ListenClientUrls = []url.URL{*curl}
	ecfg.AdvertiseClientUrls = []url.URL{*curl}
	ecfg.ListenPeerUrls = []url.URL{*purl}
	ecfg.AdvertisePeerUrls = []url.URL{*purl}
	ecfg.InitialCluster = c.InitialCluster
	if ecfg.InitialCluster == "" {
		ecfg.InitialCluster = ecfg.Name + "=" + purl.String()
	}
	if c.Existing {
		ecfg.ClusterState = embed.ClusterStateFlagExisting
	}
	ecfg.ForceNewCluster = c.ForceNewCluster
	if c.TLS != nil {
		ecfg.ClientTLSInfo.CertFile = c.TLS.CertFile
		ecfg.ClientTLSInfo.KeyFile = c.TLS.KeyFile
		ecfg.ClientTLSInfo.TrustedCAFile = c.TLS.TrustedCAFile
		ecfg.ClientTLSInfo.ClientCertAuth = c.TLS.ClientCertAuth
	}
	if c.PeerTLS != nil {
		if purl.Scheme != "https" {
			return nil, fmt.Errorf("embed: peer TLS needs an https peer URL, not %s", purl)
		}
		if c.PeerTLS.CertFile == "" || c.PeerTLS.KeyFile == "" {
			return nil, errors.New("embed: peer TLS needs the member's certificate and key")
		}
		ecfg.PeerTLSInfo.CertFile = c.PeerTLS.CertFile
		ecfg.PeerTLSInfo.KeyFile = c.PeerTLS.KeyFile
		ecfg.PeerTLSInfo.TrustedCAFile = c.PeerTLS.TrustedCAFile
		ecfg.PeerTLSInfo.ClientCertAuth = c.PeerTLS.ClientCertAuth
	} else if purl.Scheme == "https" {
		return nil, errors.New("embed: an https peer URL needs peer TLS (--embed-peer-cert and --embed-peer-key)")
	}
	lg := c.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	level := orDefault(c.LogLevel, "warn")
	ecfg.LogLevel = level
	ecfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg.Named("etcd"))
	return ecfg, nil
}

// Name is the member's name.
func (m *Member) Name() string { return m.etcd.Config().Name }

// ClientURL is the URL clients dial.
func (m *Member) ClientURL() string {
	u := m.etcd.Config().AdvertiseClientUrls[0]
	return u.String()
}

// Endpoints is ClientURL as a slice, the shape clients take.
func (m *Member) Endpoints() []string { return []string{m.ClientURL()} }

// Err delivers a fatal server error; the sidecar stops when it fires.
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// Stopped is closed when the server has stopped, for any reason.
func (m *Member) Stopped() <-chan struct{} { return m.etcd.Server.StopNotify() }

// IsLeader reports whether this member is the raft leader right now.
func (m *Member) IsLeader() bool {
	return m.etcd.Server.Leader() == m.etcd.Server.ID()
}

// Close stops the member, releasing its ports; its data dir stays. It may
// be called more than once.
func (m *Member) Close() {
	m.close.Do(func() {
		m.etcd.Close()
		<-m.etcd.Server.StopNotify()
	})
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
