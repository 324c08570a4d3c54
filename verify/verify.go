// Package verify states what must hold after an upgrade, checked against
// etcd and storage rather than trusted from the run's own report: the demo
// prints these checks, and the end-to-end tests and the fault matrix fail on
// them. Each check reads everything it judges; none of them writes.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// Check is one invariant's verdict.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// AllOK reports whether every check passed.
func AllOK(cs []Check) bool {
	for _, c := range cs {
		if !c.OK {
			return false
		}
	}
	return true
}

// After runs every check of a finished upgrade of the installation m.
func After(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, m *seed.Manifest) []Check {
	return []Check{
		Gateway(ctx, cli, v2, m),
		Epochs(ctx, libmap.New(cli), m),
		StorageIntact(m),
		V2EpochsGone(ctx, v2, m.V2Epochs),
		FenceReleased(ctx, cli),
	}
}

// syncFields are the fields the published-bucket migration and republish
// may change in a bucket document; every other byte must be v2's.
var syncFields = []string{"syncing", "sync_reason", "sync_revision"}

// Gateway checks that every v2 document under the prefix (and every known
// hidden one) is in v3 under the same key with the same bytes (published
// buckets: the same JSON but for the sync fields), and that a document
// with a TTL in v2 is bound to a lease in v3.
//
// The move's ledger entry says as of which v2 index it verified v3
// (counts.v2_index): a document written to v2 after that is no part of
// the move (a Gateway still running, which the operator must stop), and
// is counted apart rather than expected in v3.
func Gateway(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, m *seed.Manifest) Check {
	c := Check{Name: "gateway documents in v3 equal v2"}
	verifiedAt, err := movedAt(ctx, cli, m.GWPrefix)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	resp, err := v2.Get(ctx, m.GWPrefix, &clientv2.GetOptions{Recursive: true, Quorum: true})
	if err != nil {
		c.Detail = fmt.Sprintf("read v2 %s: %v", m.GWPrefix, err)
		return c
	}
	leaves := map[string]*clientv2.Node{}
	var walk func(n *clientv2.Node)
	walk = func(n *clientv2.Node) {
		if !n.Dir {
			leaves[n.Key] = n
		}
		for _, ch := range n.Nodes {
			walk(ch)
		}
	}
	walk(resp.Node)
	for _, k := range m.Hidden {
		r, err := v2.Get(ctx, k, &clientv2.GetOptions{Quorum: true})
		if err != nil {
			c.Detail = fmt.Sprintf("read hidden v2 %s: %v", k, err)
			return c
		}
		leaves[r.Node.Key] = r.Node
	}
	published := map[string]bool{}
	for _, k := range m.Published {
		published[k] = true
	}
	var bad []string
	ttl, late := 0, 0
	for k, n := range leaves {
		if verifiedAt > 0 && n.ModifiedIndex > verifiedAt {
			late++
			continue
		}
		g, err := cli.Get(ctx, k)
		if err != nil {
			c.Detail = fmt.Sprintf("read v3 %s: %v", k, err)
			return c
		}
		switch {
		case len(g.Kvs) == 0:
			bad = append(bad, k+": missing in v3")
		case published[k]:
			if !sameBut(n.Value, g.Kvs[0].Value, syncFields) {
				bad = append(bad, k+": published bucket differs beyond its sync fields")
			}
		case !bytes.Equal([]byte(n.Value), g.Kvs[0].Value):
			bad = append(bad, k+": bytes differ")
		}
		if n.TTL > 0 && len(g.Kvs) == 1 {
			ttl++
			if g.Kvs[0].Lease == 0 {
				bad = append(bad, k+": v2 TTL but no v3 lease")
			}
		}
	}
	if len(bad) > 0 {
		c.Detail = fmt.Sprintf("%d of %d documents wrong, e.g. %s", len(bad), len(leaves), strings.Join(bad[:min(3, len(bad))], "; "))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d documents byte-identical (%d published buckets compared without sync fields, %d TTL keys on leases)", len(leaves)-late, len(published), ttl)
	if late > 0 {
		c.Detail += fmt.Sprintf("; %d written to v2 after the move verified at v2 index %d, not expected in v3", late, verifiedAt)
	}
	return c
}

func sameBut(a string, b []byte, ignore []string) bool {
	var x, y map[string]any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	for _, f := range ignore {
		delete(x, f)
		delete(y, f)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// Epochs checks that every valid object has an epoch key and that no scope
// holds more epoch keys than valid objects (a bad entry was never stamped).
func Epochs(ctx context.Context, cache *libmap.Cache, m *seed.Manifest) Check {
	c := Check{Name: "every valid object has an epoch, no bad entry has one"}
	var missing []string
	for _, o := range m.Objects {
		_, ok, err := cache.Get(ctx, o.Scope, o.ID())
		if err != nil {
			c.Detail = err.Error()
			return c
		}
		if !ok {
			missing = append(missing, o.Scope.String()+"/"+o.ID())
		}
	}
	if len(missing) > 0 {
		c.Detail = fmt.Sprintf("%d of %d objects have no epoch, e.g. %s", len(missing), len(m.Objects), strings.Join(missing[:min(3, len(missing))], ", "))
		return c
	}
	var total int64
	for _, s := range libmap.Scopes() {
		n, err := cache.Count(ctx, s, "")
		if err != nil {
			c.Detail = err.Error()
			return c
		}
		if want := int64(m.Count(s, "")); n != want {
			c.Detail = fmt.Sprintf("%s has %d epoch keys for %d valid objects", s, n, want)
			return c
		}
		total += n
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d objects stamped, %d bad entries left alone", total, len(m.Bad))
	return c
}

// StorageIntact checks that the upgrade deleted nothing on storage: every
// seeded object and every bad entry is still there.
func StorageIntact(m *seed.Manifest) Check {
	c := Check{Name: "no file on storage lost"}
	var gone []string
	for _, o := range m.Objects {
		if _, err := os.Lstat(o.Path); err != nil {
			gone = append(gone, o.Path)
		}
	}
	for _, b := range m.Bad {
		if _, err := os.Lstat(b.Path); err != nil {
			gone = append(gone, b.Path)
		}
	}
	if len(gone) > 0 {
		c.Detail = fmt.Sprintf("%d files gone, e.g. %s", len(gone), strings.Join(gone[:min(3, len(gone))], ", "))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d objects and %d bad entries present", len(m.Objects), len(m.Bad))
	return c
}

// V2EpochsGone checks that the stale v2 epoch cache was deleted.
func V2EpochsGone(ctx context.Context, v2 clientv2.KeysAPI, dir string) Check {
	c := Check{Name: "v2 " + dir + " deleted"}
	_, err := v2.Get(ctx, dir, &clientv2.GetOptions{Quorum: true})
	var ce clientv2.Error
	if errors.As(err, &ce) && ce.Code == clientv2.ErrorCodeKeyNotFound {
		c.OK, c.Detail = true, "gone"
		return c
	}
	if err != nil {
		c.Detail = err.Error()
	} else {
		c.Detail = "still there"
	}
	return c
}

// FenceReleased checks that the GC fence is not held.
func FenceReleased(ctx context.Context, cli *clientv3.Client) Check {
	c := Check{Name: "GC fence released"}
	f := fencing.NewFence(cli)
	h, err := f.Get(ctx)
	switch {
	case err != nil:
		c.Detail = err.Error()
	case h != nil:
		c.Detail = fmt.Sprintf("still held by %s (%s)", h.Holder, h.Reason)
	default:
		c.OK, c.Detail = true, "no fence"
	}
	return c
}

// movedAt reads the v2 index the Gateway move verified at from its ledger
// entry in v3; 0 when there is none (not moved, or by an older rokup).
func movedAt(ctx context.Context, cli *clientv3.Client, prefix string) (uint64, error) {
	k := prefix + "/_migrations/gw/0002_v3_store"
	resp, err := cli.Get(ctx, k)
	if err != nil {
		return 0, fmt.Errorf("read the move's ledger entry %s: %v", k, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	var rec struct {
		Counts map[string]int64 `json:"counts"`
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return 0, fmt.Errorf("the move's ledger entry %s is not JSON: %v", k, err)
	}
	return uint64(max(rec.Counts["v2_index"], 0)), nil
}
