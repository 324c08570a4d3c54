package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
)

// Record is one ledger entry.
type Record struct {
	Applied     time.Time        `json:"applied"`
	ToolVersion string           `json:"tool_version"`
	Counts      map[string]int64 `json:"counts,omitempty"`
	Checksum    string           `json:"checksum,omitempty"`
	// Fake marks an entry written by migrate --fake, without running it.
	Fake bool `json:"fake,omitempty"`
}

// Source says where a migration was found applied.
type Source string

const (
	InV3 Source = "v3"
	InV2 Source = "v2" // the v2-era ledger, read-only to rokup
	// Partial: a run was interrupted (Migration.Pending); migrate finishes
	// it, a revert past it undoes what it did.
	Partial Source = "partial"
)

// Recorder keeps the ledger: <prefix>/_migrations/<app>/<name> in v3, plus
// the v2-era entries at the same path in v2, which count as applied.
type Recorder struct {
	kv     clientv3.KV
	v2     clientv2.KeysAPI // may be nil: v3 ledger only
	prefix string
	guard  fencing.Guard
}

// NewRecorder returns the ledger under prefix; every write carries guard.
func NewRecorder(kv clientv3.KV, v2 clientv2.KeysAPI, prefix string, guard fencing.Guard) *Recorder {
	return &Recorder{kv: kv, v2: v2, prefix: cleanPrefix(prefix), guard: guard}
}

// ledgerDir holds the ledger under prefix, in v3 and (hidden) in v2.
func ledgerDir(prefix string) string { return prefix + "/_migrations/" }

func (r *Recorder) key(k Key) string { return ledgerDir(r.prefix) + k.App + "/" + k.Name }

// Applied returns every applied migration among known and where it was
// found (v3 wins when both hold it).
func (r *Recorder) Applied(ctx context.Context, known []Key) (map[Key]Source, error) {
	applied := map[Key]Source{}
	if r.v2 != nil {
		// v2 hides "_migrations" from listings: read each entry by name.
		for _, k := range known {
			_, err := r.v2.Get(ctx, r.key(k), nil)
			if clientv2.IsKeyNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("gateway: read v2 ledger %s: %w", r.key(k), conn.V2Error(err))
			}
			applied[k] = InV2
		}
	}
	resp, err := r.kv.Get(ctx, ledgerDir(r.prefix), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("gateway: read ledger: %w", err)
	}
	set := map[Key]bool{}
	for _, k := range known {
		set[k] = true
	}
	for _, kv := range resp.Kvs {
		app, name, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), ledgerDir(r.prefix)), "/")
		if k := (Key{app, name}); ok && set[k] {
			applied[k] = InV3
		}
	}
	return applied, nil
}

// Get returns the v3 ledger entry of k, if any. Entries copied from the
// v2 ledger keep their v2-era bytes and may not parse as a Record.
func (r *Recorder) Get(ctx context.Context, k Key) (*Record, bool, error) {
	resp, err := r.kv.Get(ctx, r.key(k))
	if err != nil {
		return nil, false, fmt.Errorf("gateway: read ledger %s: %w", k, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	var rec Record
	_ = json.Unmarshal(resp.Kvs[0].Value, &rec)
	return &rec, true, nil
}

// Record marks k applied. It is a no-op when k is already recorded.
func (r *Recorder) Record(ctx context.Context, k Key, rec Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	key := r.key(k)
	resp, err := r.kv.Txn(ctx).
		If(append(r.guard.Cmps(), clientv3.Compare(clientv3.CreateRevision(key), "=", 0))...).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("gateway: record %s: %w", k, err)
	}
	if !resp.Succeeded {
		return r.guard.Check(ctx, r.kv) // nil: already recorded
	}
	return nil
}

// Unrecord marks k unapplied in v3. An entry only the v2 ledger holds
// cannot be removed: rokup never modifies v2.
func (r *Recorder) Unrecord(ctx context.Context, k Key) error {
	key := r.key(k)
	for {
		resp, err := r.kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("gateway: unrecord %s: %w", k, err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		tr, err := r.kv.Txn(ctx).
			If(append(r.guard.Cmps(), clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision))...).
			Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return fmt.Errorf("gateway: unrecord %s: %w", k, err)
		}
		if tr.Succeeded {
			return nil
		}
		if err := r.guard.Check(ctx, r.kv); err != nil {
			return err
		}
	}
}

// cleanPrefix drops trailing slashes and defaults to /rok/gw.
func cleanPrefix(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return DefaultPrefix
	}
	return p
}

// DefaultPrefix is the Gateway's prefix in both stores (docs/design.md#keys).
const DefaultPrefix = "/rok/gw"
