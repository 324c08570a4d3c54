package conn

import (
	"context"
	"fmt"
	"sync"

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

// WalkV2Concurrent is WalkV2 with up to workers directory reads in flight,
// for a tree of many small directories where one read after the other
// waits out a round trip per directory (the GC's Gateway versions: one
// directory per object). fn is still called one directory at a time, but
// in no set order. The directories waiting to be read are held, as
// WalkV2's queue is; they are taken newest first, so the walk goes deep
// before wide and that list stays short.
func WalkV2Concurrent(ctx context.Context, kapi clientv2.KeysAPI, dir string, workers int, fn func(leaves []*clientv2.Node) error) error {
	if workers < 1 {
		workers = 1
	}
	var (
		mu      sync.Mutex
		changed = sync.NewCond(&mu) // the queue grew, or a read ended
		queue   = []string{dir}
		reading int
		failed  error
		fnMu    sync.Mutex // serialises fn
		wg      sync.WaitGroup
	)
	read := func(d string) ([]string, error) {
		leaves, subdirs, err := readV2Dir(ctx, kapi, d, nil, nil)
		if err != nil || len(leaves) == 0 {
			return subdirs, err
		}
		fnMu.Lock()
		defer fnMu.Unlock()
		return subdirs, fn(leaves)
	}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			for {
				for len(queue) == 0 && reading > 0 && failed == nil {
					changed.Wait()
				}
				if failed != nil || len(queue) == 0 {
					return // failed, or nothing left to read and no read to add any
				}
				d := queue[len(queue)-1]
				queue = queue[:len(queue)-1]
				reading++
				mu.Unlock()
				subdirs, err := read(d)
				mu.Lock()
				reading--
				if err != nil && failed == nil {
					failed = err
				}
				queue = append(queue, subdirs...)
				changed.Broadcast()
			}
		}()
	}
	wg.Wait()
	return failed
}
