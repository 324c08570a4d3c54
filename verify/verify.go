package verify

import (
	"context"
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

// Epochs checks that every valid object has an epoch key and that no scope
// holds more epoch keys than valid objects (a bad entry was never
// stamped). A malformed map is the one bad entry the update stamps: it
// does not read maps (composer.UpdateConfig.CheckRefs), and by its name
// and readability the map is an object.
func Epochs(ctx context.Context, cache *libmap.Cache, m *seed.Manifest) Check {
	c := Check{Name: "every valid object has an epoch, no bad entry has one"}
	var missing []string
	stampedBad := m.StampedUnread()
	unread := map[libmap.Scope]int64{}
	for _, b := range stampedBad {
		unread[b.Scope]++
		if _, ok, err := cache.Get(ctx, b.Scope, b.ID()); err != nil {
			c.Detail = err.Error()
			return c
		} else if !ok {
			missing = append(missing, b.Scope.String()+"/"+b.ID())
		}
	}
	for o := range m.Objects() {
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
		c.Detail = fmt.Sprintf("%d of %d objects have no epoch, e.g. %s", len(missing), m.Total, strings.Join(missing[:min(3, len(missing))], ", "))
		return c
	}
	var total int64
	for _, s := range libmap.Scopes() {
		n, err := cache.Count(ctx, s, "")
		if err != nil {
			c.Detail = err.Error()
			return c
		}
		if want := int64(m.Count(s, "")) + unread[s]; n != want {
			c.Detail = fmt.Sprintf("%s has %d epoch keys for %d valid objects and malformed maps", s, n, want)
			return c
		}
		total += n
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d objects stamped, %d bad entries left alone", total, len(m.Bad))
	if n := len(stampedBad); n > 0 {
		c.Detail = fmt.Sprintf("%d objects stamped and %d malformed maps (stamped unread, as maps), %d other bad entries left alone", total-int64(n), n, len(m.Bad)-n)
	}
	return c
}

// StorageIntact checks that the upgrade deleted nothing on storage: every
// seeded object and every bad entry is still there.
func StorageIntact(m *seed.Manifest) Check {
	c := Check{Name: "no file on storage lost"}
	var gone []string
	for o := range m.Objects() {
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
	c.Detail = fmt.Sprintf("%d objects and %d bad entries present", m.Total, len(m.Bad))
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
