package gateway

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
)

// The move's check the other way round: once verification has found
// every v2 document in v3, v3 must hold nothing else under the prefix
// (the ledger's entries aside). A key only in v3 is what Gateway 0.14
// would read as a document v2 never had: a copy of one deleted from v2
// since an interrupted move (an old Gateway ran on v2 in between), one
// that Gateway 0.14 wrote and a revert kept, a stray write. It fails the
// move, named, before anything is recorded; --overwrite deletes it.

// noExtra checks that v3 holds no key under the prefix but the documents
// the copy read and the ledger's entries. Counting the keys settles it
// without reading them when it can: verification found every document
// the copy read in v3, so as many keys as documents means none more,
// unless a document could have expired in v3 since (then, and when the
// count differs, v3 is read to tell which keys are extra).
func (m *mover) noExtra(ctx context.Context) error {
	docs, rev, err := m.countDocsV3(ctx)
	if err != nil {
		return err
	}
	read := int64(len(m.keys) - len(m.ledger))
	if docs == read && !m.mayHaveExpired() {
		return nil
	}
	extra, err := m.extraKeys(ctx, rev)
	if err != nil || len(extra) == 0 {
		return err
	}
	m.rep.V3Only = int64(len(extra))
	m.rep.V3OnlyKeys = keyNames(extra, listMax)
	if !m.opts.Overwrite {
		return fmt.Errorf("%w: v3 holds %d keys under %s that v2 does not (first: %s); Gateway 0.14 would read them as documents; nothing was recorded; delete them, or re-run with --overwrite to delete them",
			ErrExtra, len(extra), m.opts.Prefix, strings.Join(first(m.rep.V3OnlyKeys, 3), ", "))
	}
	return m.deleteExtra(ctx, extra)
}

// countDocsV3 counts the keys under the prefix, but the ledger's, at one
// revision, reading no values.
func (m *mover) countDocsV3(ctx context.Context) (int64, int64, error) {
	all, err := m.cli.Get(ctx, m.opts.Prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, 0, fmt.Errorf("gateway: verify: count v3 keys under %s: %w", m.opts.Prefix, err)
	}
	rev := all.Header.Revision
	ledger, err := m.cli.Get(ctx, ledgerDir(m.opts.Prefix), clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(rev))
	if err != nil {
		return 0, 0, fmt.Errorf("gateway: verify: count v3 keys under %s: %w", ledgerDir(m.opts.Prefix), err)
	}
	return all.Count - ledger.Count, rev, nil
}

// mayHaveExpired says whether a TTL document the copy read is near or
// past its expiry: its v3 key may be gone with its lease, which a count
// cannot tell from an extra key.
func (m *mover) mayHaveExpired() bool {
	for _, d := range m.ttl {
		if time.Until(d.exp) <= expiryMargin {
			return true
		}
	}
	return false
}

// extraKeys reads v3 under the prefix at rev and returns the keys that
// are neither a document the copy read nor the ledger's, sorted.
func (m *mover) extraKeys(ctx context.Context, rev int64) ([]*mvccpb.KeyValue, error) {
	read := slices.Clone(m.keys)
	slices.Sort(read)
	ledger := []byte(ledgerDir(m.opts.Prefix))
	var (
		mu    sync.Mutex
		extra []*mvccpb.KeyValue
	)
	_, err := m.scanV3(ctx, rev, func(kvs []*mvccpb.KeyValue, _ *digest) int64 {
		for _, kv := range kvs {
			if bytes.HasPrefix(kv.Key, ledger) {
				continue
			}
			if _, ok := slices.BinarySearch(read, keyHash(string(kv.Key))); !ok {
				mu.Lock()
				extra = append(extra, &mvccpb.KeyValue{Key: kv.Key, ModRevision: kv.ModRevision})
				mu.Unlock()
			}
		}
		return 0
	}, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("gateway: verify: read v3 under %s: %w", m.opts.Prefix, err)
	}
	slices.SortFunc(extra, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return extra, nil
}

// deleteExtra deletes the extra keys, each only while it still holds
// what the check read (its mod revision): a key written again since is
// someone else's, and the move fails naming it rather than delete it.
func (m *mover) deleteExtra(ctx context.Context, extra []*mvccpb.KeyValue) error {
	w := batch.New(ctx, m.cli, batch.Config{
		MaxOps:   m.opts.MaxTxnOps,
		MaxBytes: m.opts.MaxRequestBytes,
		InFlight: m.opts.InFlight,
		Guard:    m.opts.Guard,
		OnConflict: func(ctx context.Context, items []batch.Item) error {
			return fmt.Errorf("%w: v3 keys near %s changed while the move deleted the keys v2 does not hold; stop other writers and re-run", ErrExtra, items[0].Ops[0].KeyBytes())
		},
	})
	for _, kv := range extra {
		err := w.Add(batch.Item{
			Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)},
			Ops:  []clientv3.Op{clientv3.OpDelete(string(kv.Key))},
		})
		if err != nil {
			break // Close returns the writer's error
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	m.rep.V3OnlyDeleted = int64(len(extra))
	return nil
}

// V3Only tells, before a move, what it would fail on for want of
// Overwrite: the keys under the prefix in v3 (the ledger's aside) that are
// no v2 document. It reads v2 whole, as a dry run of the move does, only
// when v3 holds any key there at all (a first move finds none, at the
// cost of one count). n counts them; first names the first few, sorted.
func V3Only(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, opts MoveOptions) (n int64, first []string, err error) {
	m := newMover(cli, v2, opts)
	docs, rev, err := m.countDocsV3(ctx)
	if err != nil || docs == 0 {
		return 0, nil, err
	}
	if err := m.readV2(ctx, nil); err != nil {
		return 0, nil, err
	}
	extra, err := m.extraKeys(ctx, rev)
	if err != nil {
		return 0, nil, err
	}
	return int64(len(extra)), keyNames(extra, 5), nil
}

// keyNames names the first n keys of kvs.
func keyNames(kvs []*mvccpb.KeyValue, n int) []string {
	var names []string
	for _, kv := range kvs[:min(len(kvs), n)] {
		names = append(names, string(kv.Key))
	}
	return names
}
