package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
)

// walkWorkers is how many v2 directories are read at once.
const walkWorkers = 8

// walk visits the v2 tree under prefix one directory level per request
// (sorted), never one recursive read of the whole tree: memory is bounded
// by the largest directory times the few directories in flight. fn gets
// each directory's leaves, on the calling goroutine, in no fixed order.
// empty is called
// for every empty directory. The hidden _migrations subtree, invisible in
// listings, is walked by name; other hidden names (such as _alive) are not.
// walk returns the lowest v2 index its reads saw: the index at the start.
func walk(ctx context.Context, kapi clientv2.KeysAPI, prefix string,
	fn func(dir string, leaves []*clientv2.Node) error, empty func(dir string)) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		dir   string
		node  *clientv2.Node
		index uint64
		err   error
	}
	jobs := make(chan string, walkWorkers)
	results := make(chan result, walkWorkers)
	for i := 0; i < walkWorkers; i++ {
		go func() {
			for dir := range jobs {
				r := result{dir: dir}
				resp, err := kapi.Get(ctx, dir, &clientv2.GetOptions{Sort: true})
				switch {
				case clientv2.IsKeyNotFound(err):
					r.index = errIndex(err)
				case err != nil:
					r.err = fmt.Errorf("gateway: read v2 %s: %w", dir, v2Error(err))
				default:
					r.node, r.index = resp.Node, resp.Index
				}
				results <- r
			}
		}()
	}
	defer close(jobs)

	var index uint64
	var firstErr error
	queue := []string{prefix + "/_migrations", prefix}
	inflight := 0
	for inflight > 0 || (len(queue) > 0 && firstErr == nil) {
		for inflight < walkWorkers && len(queue) > 0 && firstErr == nil {
			jobs <- queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			inflight++
		}
		r := <-results
		inflight--
		if firstErr != nil {
			continue // draining
		}
		if r.err == nil {
			r.err = ctx.Err()
		}
		if r.err != nil {
			firstErr = r.err
			cancel()
			continue
		}
		if r.index != 0 && (index == 0 || r.index < index) {
			index = r.index
		}
		if r.node == nil {
			continue
		}
		if !r.node.Dir {
			if r.dir == prefix {
				firstErr = fmt.Errorf("gateway: v2 %s is a document, not a directory", prefix)
				cancel()
				continue
			}
			if err := fn(r.dir, []*clientv2.Node{r.node}); err != nil {
				firstErr = err
				cancel()
			}
			continue
		}
		if len(r.node.Nodes) == 0 && r.dir != prefix {
			empty(r.dir)
			continue
		}
		for i := len(r.node.Nodes) - 1; i >= 0; i-- {
			if n := r.node.Nodes[i]; n.Dir {
				queue = append(queue, n.Key)
			}
		}
		if leaves := leavesOf(r.node); len(leaves) > 0 {
			if err := fn(r.dir, leaves); err != nil {
				firstErr = err
				cancel()
			}
		}
	}
	return index, firstErr
}

func leavesOf(n *clientv2.Node) []*clientv2.Node {
	if !n.Dir {
		return []*clientv2.Node{n}
	}
	var leaves []*clientv2.Node
	for _, c := range n.Nodes {
		if !c.Dir {
			leaves = append(leaves, c)
		}
	}
	return leaves
}

func errIndex(err error) uint64 {
	if e, ok := err.(clientv2.Error); ok {
		return e.Index
	}
	return 0
}

// digest is an order-independent checksum of (key, value) pairs: the XOR
// of one SHA-256 per pair. Keys are unique, so no pair cancels another;
// the walk's order and v3's order may differ and the sum still agrees.
type digest struct {
	n     int64
	bytes int64
	sum   [sha256.Size]byte
}

func pairHash(k, v string) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(k)))
	h.Write(n[:])
	h.Write([]byte(k))
	h.Write([]byte(v))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func (d *digest) addHash(h [sha256.Size]byte, size int) {
	for i := range h {
		d.sum[i] ^= h[i]
	}
	d.n++
	d.bytes += int64(size)
}

func (d *digest) add(k, v string) { d.addHash(pairHash(k, v), len(v)) }

func (d digest) String() string {
	return fmt.Sprintf("sha256x:%d:%s", d.n, hex.EncodeToString(d.sum[:]))
}

// v2Error is conn.V2Error, plus the answer of an etcd 3.4 that serves no
// v2 API: its reply to /v2/keys is not JSON at all.
func v2Error(err error) error {
	err = conn.V2Error(err)
	if err != nil && !errors.Is(err, conn.ErrV2Disabled) && strings.Contains(err.Error(), "response is invalid json") {
		return fmt.Errorf("%w: %v", conn.ErrV2Disabled, err)
	}
	return err
}

// CheckV2 proves the v2 store answers under prefix, so a server without
// the v2 API, or an unreachable one, is one clear error before any work.
func CheckV2(ctx context.Context, kapi clientv2.KeysAPI, prefix string) error {
	_, err := kapi.Get(ctx, cleanPrefix(prefix), nil)
	if err == nil || clientv2.IsKeyNotFound(err) {
		return nil
	}
	return fmt.Errorf("etcd v2 store: %w", v2Error(err))
}
