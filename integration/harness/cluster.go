package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
)

// Kinds of cluster.
const (
	Embedded = "embedded" // embed.StartCluster in the test process
	Etcd34   = "etcd3.4"  // Debian's /usr/bin/etcd, one process per member
)

// ErrNoEtcd is returned for an Etcd34 cluster when Debian's etcd 3.4 is
// not on PATH (or another version is); it wraps embed.ErrNoEtcd34.
var ErrNoEtcd = fmt.Errorf("harness: %w", embed.ErrNoEtcd34)

// Cluster is a 3-member etcd cluster whose members can be stopped and
// restarted on their data dirs.
type Cluster interface {
	Kind() string
	Endpoints() []string
	Stop(i int) error
	Restart(ctx context.Context, i int) error
	Close()
}

// StartCluster starts a 3-member cluster of kind under dir.
func StartCluster(ctx context.Context, kind, dir string) (Cluster, error) {
	switch kind {
	case Embedded:
		c, err := embed.StartCluster(ctx, embed.ClusterConfig{Size: 3, Dir: dir, NoFsync: true})
		if err != nil {
			return nil, err
		}
		return embedded{c}, nil
	case Etcd34:
		return startExternal(ctx, dir, 3)
	}
	return nil, fmt.Errorf("harness: unknown cluster kind %q", kind)
}

type embedded struct{ c *embed.Cluster }

func (e embedded) Kind() string        { return Embedded }
func (e embedded) Endpoints() []string { return e.c.Endpoints() }
func (e embedded) Stop(i int) error    { e.c.Stop(i); return nil }

// Close stops one member at a time: members stopping together make
// etcd's leader wait seconds to hand its leadership over.
func (e embedded) Close() {
	for i := 0; i < e.c.Size(); i++ {
		if l := e.c.Leader(); l >= 0 {
			e.c.Stop(l)
		}
	}
	e.c.Close()
}
func (e embedded) Restart(ctx context.Context, i int) error {
	return e.c.Restart(ctx, i)
}

// external is etcd 3.4 members as child processes, v2 enabled.
type external struct {
	members []*Proc
	clients []string
}

func startExternal(ctx context.Context, dir string, n int) (*external, error) {
	bin, err := embed.Etcd34()
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ports, err := embed.FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	x := &external{}
	var peers []string
	for i := 0; i < n; i++ {
		peers = append(peers, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, ports[2*i+1]))
		x.clients = append(x.clients, fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]))
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("e%d", i+1)
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		p := NewProc(name, filepath.Join(dir, name+".log"), bin,
			"--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", x.clients[i], "--advertise-client-urls", x.clients[i],
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir),
			"--enable-v2=true", "--log-outputs", "stderr")
		if err := p.Start(); err != nil {
			x.Close()
			return nil, err
		}
		x.members = append(x.members, p)
	}
	if err := x.waitHealthy(ctx, x.clients); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

func (x *external) Kind() string        { return Etcd34 }
func (x *external) Endpoints() []string { return x.clients }

// Stop kills member i (SIGKILL: a crashed member, not a graceful leave).
func (x *external) Stop(i int) error { return x.members[i].Kill() }

func (x *external) Restart(ctx context.Context, i int) error {
	if err := x.members[i].Start(); err != nil {
		return err
	}
	return x.waitHealthy(ctx, x.clients[i:i+1])
}

func (x *external) Close() {
	for _, m := range x.members {
		_ = m.Stop(5 * time.Second)
	}
}

func (x *external) waitHealthy(ctx context.Context, eps []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, ep := range eps {
		for {
			err := func() error {
				cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 2 * time.Second})
				if err != nil {
					return err
				}
				defer cli.Close()
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				defer rcancel()
				_, err = cli.Get(rctx, "health")
				return err
			}()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("harness: etcd 3.4 member %s not healthy: %v\n%s", ep, err, x.members[0].Tail(2000))
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
