package embed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/zap"
)

// Cluster is N members on loopback, each in its own data dir under Dir.
type Cluster struct {
	Dir     string
	members []*Member
	cfgs    []Config
}

// ClusterConfig describes an N-member loopback cluster.
type ClusterConfig struct {
	Size    int    // number of members; default 3
	Dir     string // parent of the members' data dirs; required
	TLS     *TLS
	PeerTLS *TLS // raft traffic over https, authenticated when ClientCertAuth
	NoFsync bool
	Logger  *zap.Logger
	// QuotaBytes is each member's backend quota; 0 keeps etcd's default.
	QuotaBytes int64
}

// StartCluster starts every member concurrently on free loopback ports and
// returns when all of them serve clients.
func StartCluster(ctx context.Context, cc ClusterConfig) (*Cluster, error) {
	if cc.Size == 0 {
		cc.Size = 3
	}
	if cc.Dir == "" {
		return nil, fmt.Errorf("embed: cluster needs a dir")
	}
	for attempt := 1; ; attempt++ {
		c, err := startCluster(ctx, cc)
		if !IsAddrInUse(err) || attempt == 3 {
			return c, err
		}
		// A port was taken between FreePorts and the bind: new ports, and
		// new member dirs (the old ones name the old peer URLs).
		for i := 0; i < cc.Size; i++ {
			os.RemoveAll(filepath.Join(cc.Dir, fmt.Sprintf("m%d", i+1)))
		}
	}
}

func startCluster(ctx context.Context, cc ClusterConfig) (*Cluster, error) {
	ports, err := FreePorts(2 * cc.Size)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if cc.TLS != nil {
		scheme = "https"
	}
	peerScheme := "http"
	if cc.PeerTLS != nil {
		peerScheme = "https"
	}
	cfgs := make([]Config, cc.Size)
	peers := make([]string, cc.Size)
	for i := range cfgs {
		name := fmt.Sprintf("m%d", i+1)
		cfgs[i] = Config{
			Name:       name,
			DataDir:    filepath.Join(cc.Dir, name),
			ClientURL:  fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			PeerURL:    fmt.Sprintf("%s://127.0.0.1:%d", peerScheme, ports[2*i+1]),
			TLS:        cc.TLS,
			PeerTLS:    cc.PeerTLS,
			NoFsync:    cc.NoFsync,
			Logger:     cc.Logger,
			QuotaBytes: cc.QuotaBytes,
		}
		peers[i] = name + "=" + cfgs[i].PeerURL
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(peers, ",")
	}
	c := &Cluster{Dir: cc.Dir, members: make([]*Member, cc.Size), cfgs: cfgs}
	// Members must start together: each waits for a quorum of its peers.
	var wg sync.WaitGroup
	errs := make([]error, cc.Size)
	for i := range cfgs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.members[i], errs[i] = Start(ctx, cfgs[i])
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Size is the number of members, running or stopped.
func (c *Cluster) Size() int { return len(c.cfgs) }

// Member returns member i, nil while it is stopped.
func (c *Cluster) Member(i int) *Member { return c.members[i] }

// Endpoints lists every member's client URL, stopped ones included, so a
// client keeps trying a member that comes back.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		eps[i] = cfg.ClientURL
	}
	return eps
}

// Leader is the index of the member that is raft leader, or -1.
func (c *Cluster) Leader() int {
	for i, m := range c.members {
		if m != nil && m.IsLeader() {
			return i
		}
	}
	return -1
}

// Stop stops member i; its data dir stays for Restart.
func (c *Cluster) Stop(i int) {
	if m := c.members[i]; m != nil {
		m.Close()
		c.members[i] = nil
	}
}

// Restart starts a stopped member again on its data dir, on the same ports.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if c.members[i] != nil {
		return fmt.Errorf("embed: member %s is running", c.cfgs[i].Name)
	}
	cfg := c.cfgs[i]
	cfg.Existing = true
	m, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	c.members[i] = m
	return nil
}

// Close stops every running member.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for i := range c.members {
		if c.members[i] == nil {
			continue
		}
		wg.Add(1)
		go func(i int) { defer wg.Done(); c.Stop(i) }(i)
	}
	wg.Wait()
}

// FreePorts finds n free TCP ports on 127.0.0.1. They are free when found.
// They are picked at random below the kernel's ephemeral range, so that the
// outgoing connections of a busy test machine (which take their local port
// from that range) cannot take one before the member binds it; another
// process picking the same port meanwhile stays possible, which callers
// starting members retry (IsAddrInUse).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo, hi := portRange()
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo && tries < 100*n {
			addr = fmt.Sprintf("127.0.0.1:%d", lo+rand.IntN(hi-lo))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr != "127.0.0.1:0" {
				continue // taken: draw another
			}
			return nil, fmt.Errorf("embed: find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portRange is where FreePorts draws from: from 10000 up to the start of
// the ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), or nothing
// (the kernel picks) where that cannot be read or leaves no room.
func portRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil || first <= 12000 {
		return 0, 0
	}
	return 10000, first
}

// IsAddrInUse reports whether err is a member failing to bind its ports
// because another process took one since FreePorts found it.
func IsAddrInUse(err error) bool {
	return err != nil && (errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use"))
}
