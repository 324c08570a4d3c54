package fencing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultFenceKey is the GC fence (docs/design.md#gc-fence).
const DefaultFenceKey = "/rok/fence/gc"

// Holding is what the fence key holds: who set it, why, and when.
type Holding struct {
	Holder string    `json:"holder"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	// Rev is the fence key's create revision: every GC deletion committed
	// after it is refused. Not stored in the value; filled in on read.
	Rev int64 `json:"rev,omitempty"`
}

// String names the holding in messages: who, since when, and why.
func (h Holding) String() string {
	s := fmt.Sprintf("held by %q since %s", h.Holder, h.Since.UTC().Format(time.RFC3339))
	if h.Reason != "" {
		s += fmt.Sprintf(" (reason: %s)", h.Reason)
	}
	return s
}

// Fence is the GC fence: while its key exists no GC deletes anything,
// because every GC deletion compares AbsentCmp in its own transaction.
type Fence struct {
	kv  clientv3.KV
	key string
}

// FenceOption configures a Fence.
type FenceOption func(*Fence)

// WithFenceKey puts the fence at key instead of DefaultFenceKey.
func WithFenceKey(key string) FenceOption { return func(f *Fence) { f.key = key } }

// NewFence returns the fence on kv. It reads and writes nothing.
func NewFence(kv clientv3.KV, opts ...FenceOption) *Fence {
	f := &Fence{kv: kv, key: DefaultFenceKey}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Key is the fence key.
func (f *Fence) Key() string { return f.key }

// AbsentCmp is true while the fence is not set. GC puts it in the If of
// every deletion, so a fence set at any moment stops the next one.
func (f *Fence) AbsentCmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.key), "=", 0)
}

// Get returns the current holding, or nil when the fence is not set.
func (f *Fence) Get(ctx context.Context) (*Holding, error) {
	resp, err := f.kv.Get(ctx, f.key)
	if err != nil {
		return nil, fmt.Errorf("fencing: read fence %s: %w", f.key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	h := decodeHolding(resp.Kvs[0].Value)
	h.Rev = resp.Kvs[0].CreateRevision
	return &h, nil
}

// Check returns an error wrapping ErrFenced, naming the holder and the
// reason, when the fence is set; nil when it is not.
func (f *Fence) Check(ctx context.Context) error {
	h, err := f.Get(ctx)
	if err != nil {
		return err
	}
	if h != nil {
		return fencedError(*h)
	}
	return nil
}

func fencedError(h Holding) error {
	return fmt.Errorf("%w: %s", ErrFenced, h)
}

// Op tunes one Set or Release.
type Op func(*opConfig)

type opConfig struct {
	guard Guard
	force bool
}

// WithGuard makes the change conditional on the leadership term g; when the
// term has ended the change fails with an error wrapping ErrNotLeader.
func WithGuard(g Guard) Op { return func(c *opConfig) { c.guard = g } }

// Force lets Release lift a fence set by another holder.
func Force() Op { return func(c *opConfig) { c.force = true } }

// Set sets the fence for holder, with reason, in one transaction that
// creates the key only if it is absent. Setting it again for the same
// holder is a no-op that returns the existing holding (the first reason
// stays); another holder's fence is an error wrapping ErrHeld naming it.
func (f *Fence) Set(ctx context.Context, holder, reason string, ops ...Op) (Holding, error) {
	if holder == "" {
		return Holding{}, fmt.Errorf("fencing: set fence: a holder is required")
	}
	var c opConfig
	for _, o := range ops {
		o(&c)
	}
	h := Holding{Holder: holder, Reason: reason, Since: time.Now().UTC().Truncate(time.Second)}
	val, err := json.Marshal(h)
	if err != nil {
		return Holding{}, err
	}
	for {
		resp, err := f.kv.Txn(ctx).
			If(append([]clientv3.Cmp{f.AbsentCmp()}, c.guard.Cmps()...)...).
			Then(clientv3.OpPut(f.key, string(val))).
			Else(clientv3.OpGet(f.key)).
			Commit()
		if err != nil {
			return Holding{}, fmt.Errorf("fencing: set fence %s: %w", f.key, err)
		}
		if resp.Succeeded {
			h.Rev = resp.Header.Revision
			return h, nil
		}
		// A deposed leader learns that first, even when the fence is
		// already set as it wanted.
		if err := c.guard.Check(ctx, f.kv); err != nil {
			return Holding{}, fmt.Errorf("fencing: set fence %s: %w", f.key, err)
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			cur := decodeHolding(kvs[0].Value)
			cur.Rev = kvs[0].CreateRevision
			if cur.Holder == holder {
				return cur, nil
			}
			return cur, fmt.Errorf("%w: %s", ErrHeld, cur)
		}
		if err := c.explain(ctx, f.kv, "set fence "+f.key); !errors.Is(err, errRetry) {
			return Holding{}, err
		}
		// The fence was released between the transaction and our read.
	}
}

// Release lifts the fence if holder holds it, in one transaction that
// deletes the key only if it is unchanged since read. Releasing a fence
// that is not set is a no-op (released is false). Another holder's fence
// is an error wrapping ErrHeld, unless Force is given.
func (f *Fence) Release(ctx context.Context, holder string, ops ...Op) (released bool, err error) {
	var c opConfig
	for _, o := range ops {
		o(&c)
	}
	for {
		resp, err := f.kv.Get(ctx, f.key)
		if err != nil {
			return false, fmt.Errorf("fencing: read fence %s: %w", f.key, err)
		}
		if len(resp.Kvs) == 0 {
			// Still check the guard: a deposed leader must not report a
			// release it had no right to make.
			return false, c.guard.Check(ctx, f.kv)
		}
		kv := resp.Kvs[0]
		cur := decodeHolding(kv.Value)
		cur.Rev = kv.CreateRevision
		if cur.Holder != holder && !c.force {
			return false, fmt.Errorf("%w: %s; only %q can release it, or use force", ErrHeld, cur, cur.Holder)
		}
		txn, err := f.kv.Txn(ctx).
			If(append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(f.key), "=", kv.ModRevision)}, c.guard.Cmps()...)...).
			Then(clientv3.OpDelete(f.key)).
			Commit()
		if err != nil {
			return false, fmt.Errorf("fencing: release fence %s: %w", f.key, err)
		}
		if txn.Succeeded {
			return true, nil
		}
		if err := c.explain(ctx, f.kv, "release fence "+f.key); !errors.Is(err, errRetry) {
			return false, err
		}
		// The fence changed between our read and our delete: read again.
	}
}

var errRetry = errors.New("retry")

// explain tells why a guarded transaction failed: the guard's term ended,
// or (it did not) the key under change moved, which is worth a retry.
func (c *opConfig) explain(ctx context.Context, kv clientv3.KV, what string) error {
	if err := c.guard.Check(ctx, kv); err != nil {
		return fmt.Errorf("fencing: %s: %w", what, err)
	}
	return errRetry
}

// decodeHolding reads a fence value. A value that is not our JSON (someone
// wrote the key by hand) still fences: it is shown as its raw bytes.
func decodeHolding(v []byte) Holding {
	var h Holding
	if err := json.Unmarshal(v, &h); err != nil || h.Holder == "" {
		return Holding{Holder: "unknown", Reason: fmt.Sprintf("fence key holds %q", truncate(string(v), 80))}
	}
	h.Rev = 0
	return h
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
