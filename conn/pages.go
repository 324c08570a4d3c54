package conn

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Pager reads a key range of the v3 store a page at a time, in key order,
// so a scan of millions of keys never holds them all:
//
//	for p := conn.NewPager(cli, from, end, 512); p.More(); {
//		kvs, err := p.Next(ctx)
//		if err != nil {
//			return fmt.Errorf("read …: %w", err)
//		}
//		for _, kv := range kvs { … }
//	}
//
// A page costs one range read and nothing per key. A Pager is for one
// goroutine.
type Pager struct {
	kv   clientv3.KV
	from string // where the next page starts
	at   string // where the last page started
	opts []clientv3.OpOption
	done bool
}

// NewPager pages through [from, end) (end as clientv3.WithRange takes it)
// in pages of at most limit keys; opts are added to every read
// (clientv3.WithRev, clientv3.WithKeysOnly, …). It reads nothing yet.
func NewPager(kv clientv3.KV, from, end string, limit int64, opts ...clientv3.OpOption) *Pager {
	o := make([]clientv3.OpOption, 0, 2+len(opts))
	o = append(o, clientv3.WithRange(end), clientv3.WithLimit(limit))
	return &Pager{kv: kv, from: from, opts: append(o, opts...)}
}

// More reports whether the range may hold keys not read yet.
func (p *Pager) More() bool { return !p.done }

// Next reads the next page. After the last page (possibly empty) More is
// false. A read error is returned as it is, for the caller to say what
// it was reading; Next can then be called again to retry the same page.
func (p *Pager) Next(ctx context.Context) ([]*mvccpb.KeyValue, error) {
	resp, err := p.kv.Get(ctx, p.from, p.opts...)
	if err != nil {
		return nil, err
	}
	p.at = p.from
	if !resp.More || len(resp.Kvs) == 0 {
		p.done = true
	} else {
		p.from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	return resp.Kvs, nil
}

// Again makes the next Next read the page just read once more (its keys
// changed under the caller, say).
func (p *Pager) Again() { p.from, p.done = p.at, false }
