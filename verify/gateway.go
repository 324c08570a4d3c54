package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/seed"
)

// syncFields are the fields the published-bucket migration and republish
// may change in a bucket document; every other byte must be v2's.
var syncFields = []string{"syncing", "sync_reason", "sync_revision"}

// Gateway checks that every v2 document under the prefix (and every known
// hidden one) is in v3 under the same key with the same bytes (published
// buckets: the same JSON but for the sync fields), that a document with a
// TTL in v2 is bound to a lease in v3, and, the other way, that v3 holds
// nothing else under the prefix but the ledger's entries
// <prefix>/_migrations/<app>/<name>: Gateway 0.14 reads its prefix whole,
// and any other key there is a document to it.
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
	ledgerN, extra, err := extraKeys(ctx, cli, m.GWPrefix, leaves)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	if len(extra) > 0 {
		c.Detail = fmt.Sprintf("%d v3 keys under %s are neither a v2 document nor a ledger entry (Gateway 0.14 reads them as documents), e.g. %s", len(extra), m.GWPrefix, strings.Join(extra[:min(3, len(extra))], ", "))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d documents byte-identical (%d published buckets compared without sync fields, %d TTL keys on leases); the prefix holds nothing else but %d ledger entries", len(leaves)-late, len(published), ttl, ledgerN)
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

// extraKeys reads every v3 key under prefix and returns how many are
// ledger entries (and no v2 document), and those (the first hundred) that
// are neither one of the v2 documents nor a ledger entry.
func extraKeys(ctx context.Context, cli *clientv3.Client, prefix string, docs map[string]*clientv2.Node) (int64, []string, error) {
	ledger := prefix + "/_migrations/"
	var n int64
	var extra []string
	for p := conn.NewPager(cli, prefix+"/", clientv3.GetPrefixRangeEnd(prefix+"/"), 4096, clientv3.WithKeysOnly()); p.More(); {
		kvs, err := p.Next(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("read v3 under %s: %v", prefix, err)
		}
		for _, kv := range kvs {
			k := string(kv.Key)
			if _, doc := docs[k]; doc {
				continue
			}
			if rest, ok := strings.CutPrefix(k, ledger); ok && isLedgerName(rest) {
				n++
				continue
			}
			if len(extra) < 100 {
				extra = append(extra, k)
			}
		}
	}
	return n, extra, nil
}

// isLedgerName reports whether s is <app>/<name>, both non-empty.
func isLedgerName(s string) bool {
	app, name, ok := strings.Cut(s, "/")
	return ok && app != "" && name != "" && !strings.Contains(name, "/")
}
