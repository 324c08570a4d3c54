package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
)

// walk visits the v2 tree under prefix one directory level per request
// (sorted), so memory is bounded by the largest directory, never by the
// store. fn gets each directory's leaves; empty is called for every empty
// directory. The hidden _migrations subtree, invisible in listings, is
// walked by name; other hidden names (such as _alive) are not copied.
// walk returns the v2 index of its first read.
func walk(ctx context.Context, kapi clientv2.KeysAPI, prefix string, fn func(dir string, leaves []*clientv2.Node) error, empty func(dir string)) (uint64, error) {
	var index uint64
	stack := []string{prefix + "/_migrations", prefix}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return index, err
		}
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		resp, err := kapi.Get(ctx, dir, &clientv2.GetOptions{Sort: true, Quorum: true})
		if clientv2.IsKeyNotFound(err) {
			if index == 0 {
				index = errIndex(err)
			}
			continue
		}
		if err != nil {
			return index, fmt.Errorf("gateway: read v2 %s: %w", dir, conn.V2Error(err))
		}
		if index == 0 {
			index = resp.Index
		}
		if !resp.Node.Dir {
			if dir == prefix {
				return index, fmt.Errorf("gateway: v2 %s is a document, not a directory", prefix)
			}
			if err := fn(dir, []*clientv2.Node{resp.Node}); err != nil {
				return index, err
			}
			continue
		}
		if len(resp.Node.Nodes) == 0 && dir != prefix {
			empty(dir)
			continue
		}
		var leaves []*clientv2.Node
		var subdirs []string
		for _, n := range resp.Node.Nodes {
			if n.Dir {
				subdirs = append(subdirs, n.Key)
			} else {
				leaves = append(leaves, n)
			}
		}
		if len(leaves) > 0 {
			if err := fn(dir, leaves); err != nil {
				return index, err
			}
		}
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return index, nil
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
