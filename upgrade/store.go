package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/fencing"
)

// ErrNoRun is returned for a run id with no record.
var ErrNoRun = errors.New("upgrade: no such run")

// errConflict means a compare-and-swap lost to a concurrent writer.
var errConflict = errors.New("upgrade: concurrent update")

// Store reads and writes run records and per-node step state.
type Store struct {
	cli  *clientv3.Client
	keys Keys
}

// NewStore returns a store of the given keys.
func NewStore(cli *clientv3.Client, keys Keys) *Store { return &Store{cli: cli, keys: keys} }

// Run reads a run record and its mod revision.
func (s *Store) Run(ctx context.Context, id string) (*Run, int64, error) {
	resp, err := s.cli.Get(ctx, s.keys.Run(id))
	if err != nil {
		return nil, 0, fmt.Errorf("read run %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w: %s", ErrNoRun, id)
	}
	var r Run
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return nil, 0, fmt.Errorf("run %s: record is not valid JSON: %w", id, err)
	}
	return &r, resp.Kvs[0].ModRevision, nil
}

// View is a run record with the per-node state merged in: what is true now.
func (s *Store) View(ctx context.Context, id string) (*Run, error) {
	resp, err := s.cli.Get(ctx, s.keys.Run(id), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", id, err)
	}
	runs, nodes := s.decode(resp)
	r, ok := runs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNoRun, id)
	}
	r.Merge(nodes[id])
	return r, nil
}

// Runs lists every run record, newest first, with node state merged in.
func (s *Store) Runs(ctx context.Context) ([]*Run, error) {
	resp, err := s.cli.Get(ctx, s.keys.Runs(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	runs, nodes := s.decode(resp)
	out := make([]*Run, 0, len(runs))
	for id, r := range runs {
		r.Merge(nodes[id])
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

func (s *Store) decode(resp *clientv3.GetResponse) (map[string]*Run, map[string][]NodeSteps) {
	runs := map[string]*Run{}
	nodes := map[string][]NodeSteps{}
	for _, kv := range resp.Kvs {
		id, node, ok := s.keys.parseRunKey(string(kv.Key))
		if !ok {
			continue
		}
		if node == "" {
			var r Run
			if json.Unmarshal(kv.Value, &r) == nil {
				runs[id] = &r
			}
			continue
		}
		var ns NodeSteps
		if json.Unmarshal(kv.Value, &ns) == nil {
			nodes[id] = append(nodes[id], ns)
		}
	}
	return runs, nodes
}

// saveRun writes a run record if the guard holds and, when rev > 0, the
// record is unchanged since rev (rev < 0: the record must not exist). It
// returns the new mod revision.
func (s *Store) saveRun(ctx context.Context, r *Run, g fencing.Guard, rev int64) (int64, error) {
	r.Updated = time.Now().UTC()
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	key := s.keys.Run(r.ID)
	cmps := g.Cmps()
	switch {
	case rev > 0:
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	case rev < 0:
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("save run %s: %w", r.ID, err)
	}
	if !resp.Succeeded {
		if err := g.Check(ctx, s.cli); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("save run %s: %w", r.ID, errConflict)
	}
	return resp.Header.Revision, nil
}

// nodeSteps reads one node's steps of one run; absent is (nil, 0, nil).
func (s *Store) nodeSteps(ctx context.Context, id, node string) (*NodeSteps, int64, error) {
	resp, err := s.cli.Get(ctx, s.keys.NodeState(id, node))
	if err != nil {
		return nil, 0, fmt.Errorf("read %s steps of run %s: %w", node, id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	var ns NodeSteps
	if err := json.Unmarshal(resp.Kvs[0].Value, &ns); err != nil {
		return nil, 0, fmt.Errorf("%s steps of run %s: not valid JSON: %w", node, id, err)
	}
	return &ns, resp.Kvs[0].ModRevision, nil
}

// updateNode applies fn to one node's steps with compare-and-swap,
// retrying when another writer got there first. fn sees nil when the key
// does not exist yet and returns the new value (nil: write nothing).
func (s *Store) updateNode(ctx context.Context, id, node string, g fencing.Guard, fn func(*NodeSteps) *NodeSteps) error {
	key := s.keys.NodeState(id, node)
	for {
		cur, rev, err := s.nodeSteps(ctx, id, node)
		if err != nil {
			return err
		}
		next := fn(cur)
		if next == nil {
			return nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		cmp := clientv3.Compare(clientv3.ModRevision(key), "=", rev)
		if rev == 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		}
		resp, err := s.cli.Txn(ctx).If(append(g.Cmps(), cmp)...).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("update %s steps of run %s: %w", node, id, err)
		}
		if resp.Succeeded {
			return nil
		}
		if err := g.Check(ctx, s.cli); err != nil {
			return err
		}
	}
}
