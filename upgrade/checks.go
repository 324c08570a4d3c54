package upgrade

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/gateway"
)

// checkTimeout bounds one check: an endpoint that does not answer is a
// problem to show (and wait on), not a preflight that hangs.
const checkTimeout = 5 * time.Second

// GatewayCheck refuses a run while a Gateway is running: its liveness keys
// <prefix>/_alive/* exist in v2 (hidden from listings, so read by name).
// The move would refuse later, with GC already fenced.
func GatewayCheck(v2 clientv2.KeysAPI, prefix string) Check {
	dir := "/" + strings.Trim(prefix, "/") + "/_alive"
	return Check{Name: "gateway", Before: StepMigrate, Run: func(ctx context.Context) []Problem {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		resp, err := v2.Get(ctx, dir, &clientv2.GetOptions{Quorum: true})
		switch {
		case clientv2.IsKeyNotFound(err):
			return nil
		case errors.Is(conn.V2Error(err), conn.ErrV2Disabled):
			return nil // the etcd check says so
		case err != nil:
			return []Problem{{Check: "gateway", Wait: true, Detail: fmt.Sprintf("cannot read the Gateway's liveness keys %s: %v", dir, err)}}
		}
		var alive []string
		nodes := resp.Node.Nodes
		if !resp.Node.Dir {
			nodes = clientv2.Nodes{resp.Node}
		}
		for _, n := range nodes {
			s := n.Key
			if n.TTL > 0 {
				s += fmt.Sprintf(" (expires in %ds unless refreshed)", n.TTL)
			}
			alive = append(alive, s)
		}
		if len(alive) == 0 {
			return nil
		}
		return []Problem{{Check: "gateway", Detail: fmt.Sprintf("a Gateway is running: liveness key %s; stop every Gateway (gunicorn and daemons) first", strings.Join(alive, ", "))}}
	}}
}

// MoveCheck refuses a run whose Gateway move would fail on keys under the
// prefix in v3 that v2 does not hold (gateway.V3Only): the move finds
// them only once GC is fenced. It reads v2 whole only when v3 already
// holds keys under the prefix (a move interrupted, failed or reverted
// before), and then again at each look of a waiting preflight; a v2
// document too large for the move, found by that read, refuses the run
// too.
func MoveCheck(cli *clientv3.Client, v2 clientv2.KeysAPI, prefix string) Check {
	return Check{Name: "gateway", Before: StepMigrate, Run: func(ctx context.Context) []Problem {
		ctx, cancel := context.WithTimeout(ctx, moveCheckTimeout)
		defer cancel()
		n, first, err := gateway.V3Only(ctx, cli, v2, gateway.MoveOptions{Prefix: prefix})
		switch {
		case errors.Is(err, conn.ErrV2Disabled):
			return nil // the etcd check says so
		case errors.Is(err, gateway.ErrTooLarge):
			return []Problem{{Check: "gateway", Detail: err.Error()}} // the move would fail on it too
		case err != nil:
			return []Problem{{Check: "gateway", Wait: true, Detail: fmt.Sprintf("cannot compare v3 under %s with v2: %v", prefix, err)}}
		case n == 0:
			return nil
		}
		return []Problem{{Check: "gateway", Detail: fmt.Sprintf("v3 holds %d keys under %s that v2 does not (first: %s): the Gateway move would fail on them, with GC fenced; delete them, or run rok-gw-manage migrate --overwrite (which deletes them) first", n, prefix, strings.Join(first, ", "))}}
	}}
}

// moveCheckTimeout bounds MoveCheck, which may read v2 whole.
const moveCheckTimeout = 2 * time.Minute

// EtcdCheck refuses a run on an etcd that cannot serve it: a server of 3.6
// or later (no v2 API at all) or one started without --enable-v2. It asks
// each of endpoints (cli's) for its status.
func EtcdCheck(cli *clientv3.Client, endpoints []string, v2 clientv2.KeysAPI) Check {
	return Check{Name: "etcd", Run: func(ctx context.Context) []Problem {
		var ps []Problem
		var answered int
		var unreachable []string
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		for _, ep := range endpoints {
			st, err := cli.Status(ctx, ep)
			if err != nil {
				unreachable = append(unreachable, fmt.Sprintf("%s: %v", ep, err))
				continue
			}
			answered++
			if major, minor, ok := parseVersion(st.Version); !ok || major != 3 || minor >= 6 {
				ps = append(ps, Problem{Check: "etcd", Detail: fmt.Sprintf("%s runs etcd %s: rokup needs etcd 3.x before 3.6 (3.6 removed the v2 API the move reads)", ep, st.Version)})
			}
		}
		if answered == 0 {
			ps = append(ps, Problem{Check: "etcd", Wait: true, Detail: "no endpoint answered a status request: " + strings.Join(unreachable, "; ")})
		}
		if _, err := v2.Get(ctx, "/", nil); err != nil {
			err = conn.V2Error(err)
			ps = append(ps, Problem{Check: "etcd", Wait: !errors.Is(err, conn.ErrV2Disabled), Detail: fmt.Sprintf("v2 API: %v", err)})
		}
		return ps
	}}
}

func parseVersion(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	a, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(parts[1])
	return a, b, err1 == nil && err2 == nil
}
