package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
)

// SyncReason is the "sync_reason" given to the buckets the move stops.
const SyncReason = "the Gateway store moved from etcd v2 to v3 (migration gw.0002_v3_store); the v3 revision may be behind the v2 index, so this bucket must be re-published (rok-gw-manage republish)"

// BucketsReport lists the published buckets a step saw and what it did.
type BucketsReport struct {
	Published []string `json:"published"`         // published buckets, by name
	Changed   int64    `json:"changed"`           // documents written by this run
	Invalid   []string `json:"invalid,omitempty"` // documents that are not JSON objects; untouched
	Revision  int64    `json:"sync_revision,omitempty"`
	DryRun    bool     `json:"dry_run,omitempty"`
}

// BucketsOptions say where the buckets are and how to write.
type BucketsOptions struct {
	Prefix string
	Guard  fencing.Guard
	DryRun bool
}

func bucketsPrefix(prefix string) string { return cleanPrefix(prefix) + "/buckets/" }

// MarkPublished gives every published bucket document in v3
// ("published": true) "syncing": false and a "sync_reason", keeping every
// other field. Each edit is a transaction conditional on the document's
// mod revision, so a concurrent change is re-read, never overwritten.
func MarkPublished(ctx context.Context, cli *clientv3.Client, opts BucketsOptions) (BucketsReport, error) {
	rep := BucketsReport{DryRun: opts.DryRun}
	err := scanBuckets(ctx, cli, opts.Prefix, &rep, func(kv *mvccpb.KeyValue, doc map[string]json.RawMessage) ([]byte, bool) {
		if isFalse(doc["syncing"]) && isReason(doc["sync_reason"]) {
			return nil, false
		}
		doc["syncing"] = json.RawMessage("false")
		doc["sync_reason"] = json.RawMessage(mustJSON(SyncReason))
		return encode(doc), true
	}, opts)
	return rep, err
}

// Republish sets "sync_revision" to the current v3 revision and
// "syncing": true on the named published buckets (every published bucket
// when names is empty), dropping the move's "sync_reason". A named bucket
// that does not exist is an error, found before anything is written.
func Republish(ctx context.Context, cli *clientv3.Client, names []string, opts BucketsOptions) (BucketsReport, error) {
	rep := BucketsReport{DryRun: opts.DryRun}
	bp := bucketsPrefix(opts.Prefix)
	resp, err := cli.Get(ctx, bp, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return rep, fmt.Errorf("gateway: republish: %w", err)
	}
	rep.Revision = resp.Header.Revision
	want := map[string]bool{}
	for _, n := range names {
		r, err := cli.Get(ctx, bp+strings.TrimPrefix(n, "/"), clientv3.WithCountOnly())
		if err != nil {
			return rep, fmt.Errorf("gateway: republish %s: %w", n, err)
		}
		if r.Count == 0 {
			return rep, fmt.Errorf("%w: %s (no document %s%s in v3)", ErrNotFound, n, bp, strings.TrimPrefix(n, "/"))
		}
		want[strings.TrimPrefix(n, "/")] = true
	}
	rev := json.RawMessage(fmt.Sprint(rep.Revision))
	err = scanBuckets(ctx, cli, opts.Prefix, &rep, func(kv *mvccpb.KeyValue, doc map[string]json.RawMessage) ([]byte, bool) {
		if len(want) > 0 && !want[strings.TrimPrefix(string(kv.Key), bp)] {
			return nil, false
		}
		doc["syncing"] = json.RawMessage("true")
		doc["sync_revision"] = rev
		delete(doc, "sync_reason")
		return encode(doc), true
	}, opts)
	if len(want) > 0 {
		// Report the named buckets only.
		var pub []string
		for _, b := range rep.Published {
			if want[b] {
				pub = append(pub, b)
			}
		}
		rep.Published = pub
	}
	return rep, err
}

// scanBuckets pages through the bucket documents in v3 and, for each
// published one, writes what edit returns (if it says so). Up to
// bucketWriters edits are in flight (each a round trip and a commit: one
// at a time, a store's buckets cost seconds), so edit must be safe to call
// concurrently; the report lists buckets in key order all the same.
func scanBuckets(ctx context.Context, cli *clientv3.Client, prefix string, rep *BucketsReport, edit func(*mvccpb.KeyValue, map[string]json.RawMessage) ([]byte, bool), opts BucketsOptions) error {
	bp := bucketsPrefix(prefix)
	var mu sync.Mutex // guards rep
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(bucketWriters)
	err := func() error {
		for p := conn.NewPager(cli, bp, clientv3.GetPrefixRangeEnd(bp), 256); p.More(); {
			kvs, err := p.Next(gctx)
			if err != nil {
				return fmt.Errorf("gateway: read buckets: %w", err)
			}
			for _, kv := range kvs {
				g.Go(func() error { return editBucket(gctx, cli, kv, rep, &mu, edit, opts) })
			}
		}
		return nil
	}()
	if werr := g.Wait(); werr != nil {
		err = werr // the cause; the scan stopped for it
	}
	sort.Strings(rep.Published)
	sort.Strings(rep.Invalid)
	return err
}

// bucketWriters bounds the bucket edits in flight.
const bucketWriters = 16

func editBucket(ctx context.Context, cli *clientv3.Client, kv *mvccpb.KeyValue, rep *BucketsReport, mu *sync.Mutex, edit func(*mvccpb.KeyValue, map[string]json.RawMessage) ([]byte, bool), opts BucketsOptions) error {
	name := strings.TrimPrefix(string(kv.Key), bucketsPrefix(opts.Prefix))
	for attempt := 0; ; attempt++ {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(kv.Value, &doc); err != nil || doc == nil {
			mu.Lock()
			rep.Invalid = append(rep.Invalid, name)
			mu.Unlock()
			return nil
		}
		if !isTrue(doc["published"]) {
			return nil
		}
		if attempt == 0 {
			mu.Lock()
			rep.Published = append(rep.Published, name)
			mu.Unlock()
		}
		b, write := edit(kv, doc)
		if !write || opts.DryRun {
			return nil
		}
		key := string(kv.Key)
		resp, err := cli.Txn(ctx).
			If(append(opts.Guard.Cmps(), clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision))...).
			Then(clientv3.OpPut(key, string(b), clientv3.WithIgnoreLease())).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return fmt.Errorf("gateway: update bucket %s: %w", name, err)
		}
		if resp.Succeeded {
			mu.Lock()
			rep.Changed++
			mu.Unlock()
			return nil
		}
		if err := opts.Guard.Check(ctx, cli); err != nil {
			return err
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || attempt >= 5 {
			return nil // deleted meanwhile, or changing too fast to matter
		}
		kv = kvs[0]
	}
}

// RestoreBuckets reverts MarkPublished, and what Republish or Gateway
// 0.14's syncing did after it: every published bucket document in v3 that
// differs from its v2 document only in the sync fields gets its v2 bytes
// back, verbatim (so the move's revert finds it as the move wrote it).
// One that differs beyond them was changed in v3 after the move: it only
// loses the move's two fields, if it still carries them.
func RestoreBuckets(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, opts BucketsOptions) (BucketsReport, error) {
	rep := BucketsReport{}
	err := scanBuckets(ctx, cli, opts.Prefix, &rep, func(kv *mvccpb.KeyValue, doc map[string]json.RawMessage) ([]byte, bool) {
		resp, err := v2.Get(ctx, string(kv.Key), nil)
		if err == nil && !resp.Node.Dir {
			var orig map[string]json.RawMessage
			if json.Unmarshal([]byte(resp.Node.Value), &orig) == nil && orig != nil && sameBeyondSync(orig, doc) {
				return []byte(resp.Node.Value), resp.Node.Value != string(kv.Value)
			}
		}
		if !isReason(doc["sync_reason"]) {
			return nil, false
		}
		delete(doc, "syncing")
		delete(doc, "sync_reason")
		return encode(doc), true
	}, opts)
	return rep, err
}

// syncFields are what MarkPublished, Republish and a Gateway's syncing
// change in a bucket document.
var syncFields = []string{"syncing", "sync_reason", "sync_revision"}

// sameBeyondSync reports whether two bucket documents agree on every field
// but the sync fields.
func sameBeyondSync(a, b map[string]json.RawMessage) bool {
	strip := func(d map[string]json.RawMessage) []byte {
		c := make(map[string]json.RawMessage, len(d))
		for k, v := range d {
			c[k] = v
		}
		for _, f := range syncFields {
			delete(c, f)
		}
		return encode(c)
	}
	return bytes.Equal(strip(a), strip(b))
}

// PublishedInV2 counts the published buckets in v2, for a dry run before
// the move has put them in v3.
func PublishedInV2(ctx context.Context, v2 clientv2.KeysAPI, prefix string) (BucketsReport, error) {
	rep := BucketsReport{DryRun: true}
	bp := strings.TrimSuffix(bucketsPrefix(prefix), "/")
	err := conn.WalkV2(ctx, v2, bp, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			name, ok := strings.CutPrefix(n.Key, bp+"/")
			if !ok {
				continue // the buckets folder is a document: no bucket
			}
			var doc map[string]json.RawMessage
			if json.Unmarshal([]byte(n.Value), &doc) != nil || doc == nil {
				rep.Invalid = append(rep.Invalid, name)
				continue
			}
			if isTrue(doc["published"]) {
				rep.Published = append(rep.Published, name)
			}
		}
		return nil
	})
	sort.Strings(rep.Published)
	if err != nil {
		return rep, fmt.Errorf("gateway: %w", err)
	}
	return rep, nil
}

func isReason(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil && s == SyncReason
}

func isTrue(raw json.RawMessage) bool {
	var b bool
	return json.Unmarshal(raw, &b) == nil && b
}

func isFalse(raw json.RawMessage) bool {
	var b bool
	return len(raw) > 0 && json.Unmarshal(raw, &b) == nil && !b
}

// encode writes a document read from valid JSON back (it cannot fail).
func encode(doc map[string]json.RawMessage) []byte {
	b, _ := json.Marshal(doc)
	return b
}

func mustJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
