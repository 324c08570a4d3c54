package rehearse

import (
	"context"
	"fmt"
	"net/url"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/rokup/rokup/conn"
	rokembed "github.com/rokup/rokup/embed"
)

// copyMember is the embedded member serving the copy, with the clients
// the steps use, as the sidecar makes them.
type copyMember struct {
	e        *embed.Etcd
	endpoint string
	v3       *clientv3.Client
	v2       clientv2.Client
	keys     clientv2.KeysAPI
	version  string // the etcd server's version
	index    uint64 // the v2 index it opened at
	rev      int64  // the v3 revision it opened at
}

// serve starts an etcd 3.5 member on the copy in dir, v2 API on, client
// and peer ports on loopback. With force it is the only member of a new
// cluster (etcd's --force-new-cluster: the other members of the
// production cluster are dropped from the copy's membership); without,
// dir is empty and the member new.
func serve(ctx context.Context, dir string, force bool, lg *zap.Logger) (*copyMember, error) {
	ports, err := rokembed.FreePorts(2)
	if err != nil {
		return nil, fmt.Errorf("rehearse: loopback ports: %w", err)
	}
	e, err := startEtcd(ctx, dir, force, ports, lg)
	if err != nil {
		return nil, fmt.Errorf("rehearse: serve the copy (etcd 3.5, force-new-cluster %v): %w", force, err)
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	c := &copyMember{e: e}
	cfg := conn.Config{Endpoints: []string{endpoint}}
	if c.v3, err = conn.V3(ctx, cfg); err != nil {
		c.close()
		return nil, err
	}
	if c.v2, err = conn.V2(cfg); err != nil {
		c.close()
		return nil, err
	}
	c.keys = conn.NewKeysAPI(c.v2)
	c.endpoint = endpoint
	if err := c.mark(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// mark reads the member's version, v3 revision and v2 index.
func (c *copyMember) mark(ctx context.Context) error {
	st, err := c.v3.Status(ctx, c.endpoint)
	if err != nil {
		return fmt.Errorf("rehearse: status of the copy's member: %w", err)
	}
	c.version, c.rev = st.Version, st.Header.Revision
	resp, err := c.keys.Get(ctx, "/", nil)
	if err != nil {
		return fmt.Errorf("rehearse: v2 on the copy: %w", conn.V2Error(err))
	}
	c.index = resp.Index
	return nil
}

// close stops the member; the v2 client's idle connections go first, or
// etcd's shutdown waits on them.
func (c *copyMember) close() {
	if c.v3 != nil {
		c.v3.Close()
	}
	conn.CloseIdleV2()
	c.e.Close()
	<-c.e.Server.StopNotify()
}

// startEtcd is embed.Start of rokup's embed package with etcd's
// ForceNewCluster, which that package's Config does not offer.
func startEtcd(ctx context.Context, dir string, force bool, ports []int, lg *zap.Logger) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "rehearsal"
	cfg.Dir = dir
	cfg.EnableV2 = true
	cfg.ForceNewCluster = force
	curl, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[0]))
	purl, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", ports[1]))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*curl}, []url.URL{*curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	cfg.InitialCluster = cfg.Name + "=" + purl.String()
	if lg == nil {
		lg = zap.NewNop()
	}
	cfg.LogLevel = "warn"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg.Named("etcd"))
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	// A large WAL takes a while to replay.
	t := time.NewTimer(5 * time.Minute)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-t.C:
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("%w after 5m", rokembed.ErrNotReady)
	}
}
