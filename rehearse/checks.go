package rehearse

import (
	"context"
	"errors"
	"fmt"
	"sort"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/upgrade"
)

// The checks the master's preflight makes before it writes anything
// (upgrade.CheckRun), those that hold on the copy: a running Gateway, a
// GC fence, a run not finished. The nodes and storage checks need the
// live sidecars and are not rehearsed.

// preflight adds to r the problems the real run would be refused for,
// and the counts the move does not report (v2 epoch keys, v2 ledger).
func (x *rehearsal) preflight(ctx context.Context) error {
	alive, err := x.aliveKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range alive {
		x.problem(Problem{Check: "gateway", Key: k, Detail: fmt.Sprintf("a Gateway is running: liveness key %s exists; the run refuses until every Gateway (gunicorn and daemons) is stopped", k)})
	}
	h, err := fencing.NewFence(x.c.v3).Get(ctx)
	if err != nil {
		return err
	}
	switch {
	case h != nil && h.Holder == upgrade.FenceHolder(x.opts.RunID):
		x.note("GC is fenced by run %q itself (%s): the run resumes past gc-fence", x.opts.RunID, h)
	case h != nil:
		x.problem(Problem{Check: "fence", Key: fencing.DefaultFenceKey, Detail: fmt.Sprintf("GC is already fenced, %s; gc-fence fails on another holder's fence (release it first: rokup fence release --holder %s)", h, h.Holder)})
	}
	runs, err := upgrade.NewStore(x.c.v3, upgrade.DefaultKeys).Runs(ctx)
	if err != nil {
		return err
	}
	for _, run := range runs {
		if run.ID != x.opts.RunID && !upgrade.Terminal(run.State) {
			x.problem(Problem{Check: "runs", Key: upgrade.DefaultKeys.Run(run.ID), Detail: fmt.Sprintf("run %q is %s; a new run is refused while it is not finished (rokup abort --id %s, or resume it)", run.ID, run.State, run.ID)})
		}
	}
	if x.r.Store.V2EpochKeys, err = countLeaves(ctx, x.c.keys, x.opts.V2Epochs); err != nil {
		return err
	}
	x.r.Store.LedgerEntries, err = countLeaves(ctx, x.c.keys, x.r.GWPrefix+"/_migrations")
	return err
}

// aliveKeys lists the Gateway liveness keys; v2 hides _alive from
// listings, so it is read by name.
func (x *rehearsal) aliveKeys(ctx context.Context) ([]string, error) {
	dir := x.r.GWPrefix + "/_alive"
	resp, err := x.c.keys.Get(ctx, dir, &clientv2.GetOptions{Sort: true})
	if clientv2.IsKeyNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rehearse: read v2 %s: %w", dir, conn.V2Error(err))
	}
	if !resp.Node.Dir {
		return []string{resp.Node.Key}, nil
	}
	var keys []string
	for _, n := range resp.Node.Nodes {
		keys = append(keys, n.Key)
	}
	return keys, nil
}

// readBudget bounds one whole-subtree read of the walk; past it the
// subtree is read a level at a time.
const readBudget = 4 << 20

// walkLeaves calls fn with every leaf under dir in v2 (a missing dir has
// none); see walkTree.
func walkLeaves(ctx context.Context, keys clientv2.KeysAPI, dir string, fn func(*clientv2.Node) error) error {
	return walkTree(ctx, keys, dir, fn, nil)
}

// walkTree calls fn with every leaf under dir in v2 and empty, if set,
// with every empty directory, reading whole subtrees when they fit
// readBudget and a level at a time otherwise, so memory stays bounded by
// the largest directory. Hidden names (_…) are not listed by v2 and not
// visited, except dir itself. A missing dir has nothing.
func walkTree(ctx context.Context, keys clientv2.KeysAPI, dir string, fn func(*clientv2.Node) error, empty func(dir string) error) error {
	k, ok := keys.(*conn.Keys)
	if !ok {
		return fmt.Errorf("rehearse: v2 keys API %T cannot read with a budget", keys)
	}
	var visit func(dir string, recursive bool) error
	visit = func(dir string, recursive bool) error {
		budget := int64(readBudget)
		if !recursive {
			budget = 0 // one level must be read, whatever it holds
		}
		n, _, err := k.Read(ctx, dir, recursive, budget)
		switch {
		case clientv2.IsKeyNotFound(err):
			return nil
		case errors.Is(err, conn.ErrTooBig):
			return visit(dir, false)
		case err != nil:
			return fmt.Errorf("rehearse: read v2 %s: %w", dir, conn.V2Error(err))
		}
		var leaves func(n *clientv2.Node) error
		leaves = func(n *clientv2.Node) error {
			if !n.Dir {
				return fn(n)
			}
			if len(n.Nodes) == 0 && empty != nil {
				return empty(n.Key)
			}
			for _, c := range n.Nodes {
				if c.Dir && !recursive {
					// A listing shows a subdirectory, not what it holds.
					if err := visit(c.Key, true); err != nil {
						return err
					}
					continue
				}
				if err := leaves(c); err != nil {
					return err
				}
			}
			return nil
		}
		return leaves(n)
	}
	return visit(dir, true)
}

func countLeaves(ctx context.Context, keys clientv2.KeysAPI, dir string) (int64, error) {
	var n int64
	err := walkLeaves(ctx, keys, dir, func(*clientv2.Node) error { n++; return nil })
	return n, err
}

// bigDoc is a document too large for one transaction.
type bigDoc struct {
	key  string
	size int64 // value bytes
}

// oversize lists every document under the prefix too large for one
// transaction of limit bytes, as the move measures it, largest first.
func oversize(ctx context.Context, keys clientv2.KeysAPI, prefix string, limit int) ([]bigDoc, error) {
	var big []bigDoc
	err := walkLeaves(ctx, keys, prefix, func(n *clientv2.Node) error {
		if docBytes(n.Key, n.Value) > limit {
			big = append(big, bigDoc{key: n.Key, size: int64(len(n.Value))})
		}
		return nil
	})
	sort.Slice(big, func(i, j int) bool { return big[i].size > big[j].size })
	return big, err
}

// docBytes is what a document costs one transaction, as gateway's move
// accounts it (key, value, and the framing of its compare and put).
func docBytes(key, value string) int { return len(key) + len(value) + 2*16 }
