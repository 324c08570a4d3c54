package libmap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
)

// The default keys (docs/design.md#v3-keys).
const (
	DefaultEpochKey = "/libmap/epoch"
	DefaultPrefix   = "/epochs/"
	// DefaultPageSize is how many epoch keys Scan reads per request.
	DefaultPageSize = 1000
)

var (
	// ErrBadEpoch is returned when an epoch key does not hold a decimal
	// integer ≥ 1.
	ErrBadEpoch = errors.New("libmap: malformed epoch")
	// ErrEpochMoved is returned when the current epoch advanced while
	// objects were being stamped (a GC started); stamping again fixes it.
	ErrEpochMoved = errors.New("libmap: the current epoch advanced during stamping")
)

// Cache is the epoch cache in one etcd v3 keyspace. It is safe for
// concurrent use.
type Cache struct {
	kv       clientv3.KV
	epochKey string
	prefix   string
	pageSize int
	timeout  time.Duration
}

// Option configures a Cache.
type Option func(*Cache)

// WithEpochKey sets the key of the current epoch (default /libmap/epoch).
func WithEpochKey(k string) Option { return func(c *Cache) { c.epochKey = k } }

// WithPrefix sets the prefix of the epoch keys (default /epochs/).
func WithPrefix(p string) Option {
	return func(c *Cache) {
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		c.prefix = p
	}
}

// WithPageSize sets how many keys Scan reads per request.
func WithPageSize(n int) Option {
	return func(c *Cache) {
		if n > 0 {
			c.pageSize = n
		}
	}
}

// New returns the cache stored in kv.
func New(kv clientv3.KV, opts ...Option) *Cache {
	c := &Cache{epochKey: DefaultEpochKey, prefix: DefaultPrefix, pageSize: DefaultPageSize, timeout: DefaultRequestTimeout}
	for _, o := range opts {
		o(c)
	}
	c.kv = timeoutKV{kv: kv, d: c.timeout}
	return c
}

// EpochKey is the key holding the current epoch.
func (c *Cache) EpochKey() string { return c.epochKey }

// Prefix is the prefix of every epoch key, ending in "/".
func (c *Cache) Prefix() string { return c.prefix }

// Key is the epoch key of the object id of scope (see Scope.ID).
func (c *Cache) Key(scope Scope, id string) string {
	return c.prefix + string(scope) + "/" + id
}

// ScopePrefix is the prefix of scope's keys; with a node, of that node's
// keys only (nodelocal scopes).
func (c *Cache) ScopePrefix(scope Scope, node string) string {
	p := c.prefix + string(scope) + "/"
	if node != "" && scope.Nodelocal() {
		p += node + "/"
	}
	return p
}

// Current returns the current epoch, creating it as 1 when absent. The
// creation is one transaction (absent → put 1, else read), so nodes racing
// to create it all see the same value.
func (c *Cache) Current(ctx context.Context) (uint64, error) {
	e, _, err := c.current(ctx)
	return e, err
}

// current also returns the epoch key's mod revision, which changes exactly
// when the epoch advances.
func (c *Cache) current(ctx context.Context) (uint64, int64, error) {
	// The common case is a plain read, which etcd serves without a raft
	// write; only an absent key costs the creating transaction.
	g, err := c.kv.Get(ctx, c.epochKey)
	if err != nil {
		return 0, 0, fmt.Errorf("libmap: read current epoch %s: %w", c.epochKey, err)
	}
	if len(g.Kvs) == 1 {
		e, err := ParseEpoch(g.Kvs[0].Value)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", c.epochKey, err)
		}
		return e, g.Kvs[0].ModRevision, nil
	}
	resp, err := c.kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.epochKey), "=", 0)).
		Then(clientv3.OpPut(c.epochKey, "1")).
		Else(clientv3.OpGet(c.epochKey)).
		Commit()
	if err != nil {
		return 0, 0, fmt.Errorf("libmap: read current epoch %s: %w", c.epochKey, err)
	}
	if resp.Succeeded {
		return 1, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return 0, 0, fmt.Errorf("libmap: epoch key %s vanished while read", c.epochKey)
	}
	e, err := ParseEpoch(kvs[0].Value)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", c.epochKey, err)
	}
	return e, kvs[0].ModRevision, nil
}

// Advance moves the current epoch from E to E+1 with a compare-and-swap and
// returns E+1. Concurrent advances each move it once: a lost race re-reads
// and tries again. Cancelling ctx stops the retries.
func (c *Cache) Advance(ctx context.Context) (uint64, error) {
	for {
		e, rev, err := c.current(ctx)
		if err != nil {
			return 0, err
		}
		next := e + 1
		resp, err := c.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(c.epochKey), "=", rev)).
			Then(clientv3.OpPut(c.epochKey, strconv.FormatUint(next, 10))).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("libmap: advance epoch %d→%d: %w", e, next, err)
		}
		if resp.Succeeded {
			return next, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// Entry is one object's epoch as read from the cache.
type Entry struct {
	Scope Scope
	ID    string // as Scope.ID: "<node>/<name>" or the hash
	Epoch uint64
	// ModRevision is the key's mod revision when read: a GC deletes the key
	// only if it is still this (Unchanged), so a touch in between wins.
	ModRevision int64
}

// Node is the entry's node ("" for content-addressed scopes).
func (e Entry) Node() string { n, _ := e.Scope.SplitID(e.ID); return n }

// Name is the object's name within its scope folder (uuid, index or hash).
func (e Entry) Name() string { _, n := e.Scope.SplitID(e.ID); return n }

// Get reads one object's epoch with its mod revision; ok is false when the
// object has no epoch.
func (c *Cache) Get(ctx context.Context, scope Scope, id string) (e Entry, ok bool, err error) {
	key := c.Key(scope, id)
	resp, err := c.kv.Get(ctx, key)
	if err != nil {
		return Entry{}, false, fmt.Errorf("libmap: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return Entry{Scope: scope, ID: id}, false, nil
	}
	ep, err := ParseEpoch(resp.Kvs[0].Value)
	if err != nil {
		return Entry{}, false, fmt.Errorf("%s: %w", key, err)
	}
	return Entry{Scope: scope, ID: id, Epoch: ep, ModRevision: resp.Kvs[0].ModRevision}, true, nil
}

// Unchanged is true while the entry's key is as it was read: same mod
// revision, or still absent for an entry read as absent (ModRevision 0).
// A GC puts it in the If of its deletion.
func (c *Cache) Unchanged(e Entry) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(c.Key(e.Scope, e.ID)), "=", e.ModRevision)
}

// OpDelete deletes the entry's key (for a GC's guarded deletion).
func (c *Cache) OpDelete(e Entry) clientv3.Op { return clientv3.OpDelete(c.Key(e.Scope, e.ID)) }

// OpStamp puts epoch for the object id of scope.
func (c *Cache) OpStamp(scope Scope, id string, epoch uint64) clientv3.Op {
	return clientv3.OpPut(c.Key(scope, id), strconv.FormatUint(epoch, 10))
}

// Scan streams the epochs of scope in key order, one page per request, so
// a scope of millions of keys never sits in memory. With a node, only that
// node's objects of a nodelocal scope. fn's error stops the scan and is
// returned. Keys whose value is not an epoch are reported as errors.
func (c *Cache) Scan(ctx context.Context, scope Scope, node string, fn func(Entry) error) error {
	prefix := c.ScopePrefix(scope, node)
	scopePrefix := c.ScopePrefix(scope, "")
	for p := conn.NewPager(c.kv, prefix, clientv3.GetPrefixRangeEnd(prefix), int64(c.pageSize)); p.More(); {
		kvs, err := p.Next(ctx)
		if err != nil {
			return fmt.Errorf("libmap: scan %s: %w", prefix, err)
		}
		for _, kv := range kvs {
			ep, err := ParseEpoch(kv.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", kv.Key, err)
			}
			id := strings.TrimPrefix(string(kv.Key), scopePrefix)
			if err := fn(Entry{Scope: scope, ID: id, Epoch: ep, ModRevision: kv.ModRevision}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Count returns how many epoch keys scope holds (for node, if given).
func (c *Cache) Count(ctx context.Context, scope Scope, node string) (int64, error) {
	prefix := c.ScopePrefix(scope, node)
	resp, err := c.kv.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("libmap: count %s: %w", prefix, err)
	}
	return resp.Count, nil
}

// Touch is the content-addressed cache look-up (docs/design.md#epochs): in one
// transaction, if the object's epoch key exists it is re-stamped with the
// current epoch and Touch answers true; if not, nothing is written and it
// answers false (the composer then writes the object and stamps it).
//
// Race with Advance: the transaction also compares the epoch key's mod
// revision with the one read just before, so it commits only while the
// epoch it writes is still the current one. If a GC advanced the epoch to
// G in between, the compare fails and Touch retries with G. A touch that
// answers true has therefore stamped an epoch ≥ any G advanced before it
// committed, and, because it changed the key's mod revision, any GC
// deletion compare made on an earlier read of the key fails: a concurrent
// touch always wins against the sweep.
func (c *Cache) Touch(ctx context.Context, scope Scope, node, name string) (bool, error) {
	if !scope.Valid() {
		_, err := ParseScope(string(scope))
		return false, err
	}
	id := scope.ID(node, name)
	key := c.Key(scope, id)
	for {
		e, rev, err := c.current(ctx)
		if err != nil {
			return false, err
		}
		resp, err := c.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0),
				clientv3.Compare(clientv3.ModRevision(c.epochKey), "=", rev)).
			Then(clientv3.OpPut(key, strconv.FormatUint(e, 10))).
			Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
			Commit()
		if err != nil {
			return false, fmt.Errorf("libmap: touch %s: %w", key, err)
		}
		if resp.Succeeded {
			return true, nil
		}
		if resp.Responses[0].GetResponseRange().Count == 0 {
			return false, nil
		}
		// The key exists, so the epoch moved: try again with the new one.
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}

// Stamp puts the current epoch for one object, as a composer does right
// after writing it. Like Touch it commits only while the epoch it writes is
// still the current one (a GC advancing the epoch in between makes it
// retry with G), so an object stamped after a GC began carries ≥ G and is
// kept by that GC. It returns the epoch written.
func (c *Cache) Stamp(ctx context.Context, scope Scope, node, name string) (uint64, error) {
	if !scope.Valid() {
		_, err := ParseScope(string(scope))
		return 0, err
	}
	key := c.Key(scope, scope.ID(node, name))
	for {
		e, cur, err := c.current(ctx)
		if err != nil {
			return 0, err
		}
		resp, err := c.kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(c.epochKey), "=", cur)).
			Then(clientv3.OpPut(key, strconv.FormatUint(e, 10))).
			Commit()
		if err != nil {
			return 0, fmt.Errorf("libmap: stamp %s: %w", key, err)
		}
		if resp.Succeeded {
			return e, nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// ParseEpoch reads an epoch as the cache stores it: a decimal integer ≥ 1.
// Anything else is an error wrapping ErrBadEpoch.
func ParseEpoch(v []byte) (uint64, error) {
	e, err := strconv.ParseUint(strings.TrimSpace(string(v)), 10, 64)
	if err != nil || e == 0 {
		return 0, fmt.Errorf("%w: %q", ErrBadEpoch, v)
	}
	return e, nil
}
