package conn

import (
	"context"
	"fmt"

	clientv2 "go.etcd.io/etcd/client/v2"
)

// WalkV2 visits the v2 tree under dir breadth first, one directory level
// per request (sorted, as etcdctl ls does), and calls fn with the
// documents of each directory that has some. A dir that is itself a
// document is handed to fn alone; a missing one (or a subdirectory
// deleted meanwhile) holds nothing. v2 lists no hidden name (_…), so none
// is visited but dir itself.
//
// fn must not keep the slice, which the walk reuses; its error stops the
// walk and is returned as it is. A read error comes back as V2Error makes
// it, naming the directory (errors.Is(err, ErrV2Disabled) works).
//
// The Gateway move reads v2 its own way (gateway's walker: whole
// subtrees, in parallel, with a byte budget); this is the walk of
// everything else, where one request per directory is cheap enough.
func WalkV2(ctx context.Context, kapi clientv2.KeysAPI, dir string, fn func(leaves []*clientv2.Node) error) error {
	queue := []string{dir}
	var leaves []*clientv2.Node
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		resp, err := kapi.Get(ctx, d, &clientv2.GetOptions{Sort: true})
		if clientv2.IsKeyNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read v2 %s: %w", d, V2Error(err))
		}
		leaves = leaves[:0]
		if !resp.Node.Dir {
			leaves = append(leaves, resp.Node)
		}
		for _, n := range resp.Node.Nodes {
			if n.Dir {
				queue = append(queue, n.Key)
			} else {
				leaves = append(leaves, n)
			}
		}
		if len(leaves) > 0 {
			if err := fn(leaves); err != nil {
				return err
			}
		}
	}
	return nil
}
