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
// subtrees, in parallel, with a byte budget), and so does the GC's walk of
// the Gateway's versions (gateway.WalkV2); this is the walk of everything
// else, where one request per directory is cheap enough.
func WalkV2(ctx context.Context, kapi clientv2.KeysAPI, dir string, fn func(leaves []*clientv2.Node) error) error {
	queue := []string{dir}
	var leaves []*clientv2.Node
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		var err error
		if leaves, queue, err = readV2Dir(ctx, kapi, d, leaves[:0], queue); err != nil {
			return err
		}
		if len(leaves) > 0 {
			if err := fn(leaves); err != nil {
				return err
			}
		}
	}
	return nil
}

// readV2Dir reads one level of the v2 directory d: its documents are
// appended to leaves (d itself, when it is a document) and its
// subdirectories to dirs. A missing d holds nothing.
func readV2Dir(ctx context.Context, kapi clientv2.KeysAPI, d string, leaves []*clientv2.Node, dirs []string) ([]*clientv2.Node, []string, error) {
	resp, err := kapi.Get(ctx, d, &clientv2.GetOptions{Sort: true})
	if clientv2.IsKeyNotFound(err) {
		return leaves, dirs, nil
	}
	if err != nil {
		return leaves, dirs, fmt.Errorf("read v2 %s: %w", d, V2Error(err))
	}
	if !resp.Node.Dir {
		leaves = append(leaves, resp.Node)
	}
	for _, n := range resp.Node.Nodes {
		if n.Dir {
			dirs = append(dirs, n.Key)
		} else {
			leaves = append(leaves, n)
		}
	}
	return leaves, dirs, nil
}
