package rehearse

import (
	"context"
	"fmt"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

// copyMember is the embedded member serving the copy, with the clients
// the steps use, as the sidecar makes them.
type copyMember struct {
	m        *embed.Member
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
	ports, err := embed.FreePorts(2)
	if err != nil {
		return nil, fmt.Errorf("rehearse: loopback ports: %w", err)
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	m, err := embed.Start(ctx, embed.Config{
		Name:            "rehearsal",
		DataDir:         dir,
		ClientURL:       endpoint,
		PeerURL:         fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		ForceNewCluster: force,
		Logger:          lg,
		ReadyTimeout:    5 * time.Minute, // a large WAL takes a while to replay
	})
	if err != nil {
		return nil, fmt.Errorf("rehearse: serve the copy (etcd 3.5, force-new-cluster %v): %w", force, err)
	}
	c := &copyMember{m: m}
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
	c.m.Close()
}
