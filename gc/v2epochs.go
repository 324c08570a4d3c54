package gc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
)

// v2Index is the v2 store's index now: v2 epochs modified after it were
// stamped or touched after the run began.
func (g *run) v2Index(ctx context.Context) (uint64, error) {
	resp, err := g.cfg.V2.Get(ctx, strings.TrimSuffix(g.cfg.V2EpochPrefix, "/"), nil)
	if err == nil {
		return resp.Index, nil
	}
	var ce clientv2.Error
	if errors.As(err, &ce) && ce.Code == clientv2.ErrorCodeKeyNotFound {
		return ce.Index, nil
	}
	return 0, fmt.Errorf("gc: read the v2 index: %w", conn.V2Error(err))
}

// v2Epoch looks c up in the v2 epoch cache; each directory is listed once
// (one level), as v2 has no multi-key read.
func (g *run) v2Epoch(ctx context.Context, c candidate) (uint64, bool, error) {
	dir := g.cfg.V2EpochPrefix + string(c.scope)
	node, name := c.scope.SplitID(c.id)
	if node != "" {
		dir += "/" + node
	}
	g.v2mu.Lock()
	defer g.v2mu.Unlock()
	entries, ok := g.v2Dirs[dir]
	if !ok {
		entries = map[string]uint64{}
		resp, err := g.cfg.V2.Get(ctx, dir, nil)
		switch {
		case clientv2.IsKeyNotFound(err):
		case err != nil:
			return 0, false, fmt.Errorf("gc: list v2 epochs %s: %w", dir, conn.V2Error(err))
		default:
			for _, n := range resp.Node.Nodes {
				if !n.Dir {
					entries[filepath.Base(n.Key)] = n.ModifiedIndex
				}
			}
		}
		g.v2Dirs[dir] = entries
	}
	idx, ok := entries[name]
	return idx, ok, nil
}

// v2Delete deletes c's v2 epoch key if it is unchanged since listed.
func (g *run) v2Delete(ctx context.Context, c candidate, idx uint64) bool {
	key := g.cfg.V2EpochPrefix + string(c.scope) + "/" + c.id
	_, err := g.cfg.V2.Delete(ctx, key, &clientv2.DeleteOptions{PrevIndex: idx})
	if err == nil {
		return true
	}
	g.count(func(r *Report) {
		var ce clientv2.Error
		if errors.As(err, &ce) && (ce.Code == clientv2.ErrorCodeTestFailed || ce.Code == clientv2.ErrorCodeKeyNotFound) {
			r.TooRecent++ // touched (or removed) in v2 since listed: kept
			return
		}
		r.Errors++
		r.ErrorList = listAppend(r.ErrorList, fmt.Sprintf("v2 delete %s: %v", key, err))
	})
	return false
}
