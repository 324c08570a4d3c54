package conn

import (
	"context"
	"math/big"

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
// etcd 3.5 answers a range read with a limit by visiting every key of the
// range, to count them: a page of [from, end) costs as much as the keys
// left after from, and a scan read that way costs the square of its keys
// over the page size (reverting a 200 000-document move took etcd 13.2
// CPU-s, nearly all of it counting). So after its first page a Pager
// reads a window [from, bound) expected to hold about two pages, bound
// estimated from the key distance the last full page spanned, and while
// windows hold less than a page it widens them 4×, then 16×, 64×…: each
// read then visits a few pages' keys, and a gap between keys costs a few
// reads more. Pages are full but for the last, as etcd's own. A Pager is for
// one goroutine.
type Pager struct {
	kv    clientv3.KV
	from  string // where the next page starts
	at    string // where the last page started
	end   string
	limit int64
	opts  []clientv3.OpOption
	span  *distance // what the next window spans; nil: up to end
	done  bool
}

// NewPager pages through [from, end) (end as clientv3.WithRange takes it)
// in pages of at most limit keys; opts are added to every read
// (clientv3.WithRev, clientv3.WithKeysOnly, …). It reads nothing yet.
func NewPager(kv clientv3.KV, from, end string, limit int64, opts ...clientv3.OpOption) *Pager {
	return &Pager{kv: kv, from: from, end: end, limit: limit, opts: opts}
}

// More reports whether the range may hold keys not read yet.
func (p *Pager) More() bool { return !p.done }

// Next reads the next page: limit keys, or fewer for the last one. After
// the last page (possibly empty) More is false. A read error is returned
// as it is, for the caller to say what it was reading; Next can then be
// called again to retry the same page.
func (p *Pager) Next(ctx context.Context) ([]*mvccpb.KeyValue, error) {
	from, span := p.from, p.span
	var page []*mvccpb.KeyValue
	for grow := int64(4); ; grow = min(grow*4, 1<<40) {
		bound := p.bound(from, span)
		opts := append([]clientv3.OpOption{clientv3.WithRange(bound), clientv3.WithLimit(p.limit - int64(len(page)))}, p.opts...)
		resp, err := p.kv.Get(ctx, from, opts...)
		if err != nil {
			return nil, err // the same page again on the next call
		}
		page = append(page, resp.Kvs...)
		switch {
		case resp.More: // a full page, and the window holds more
			next := string(page[len(page)-1].Key) + "\x00"
			p.at, p.from, p.span = p.from, next, between(string(page[0].Key), next).times(2)
			return page, nil
		case bound == p.end: // the rest of the range
			p.at, p.from, p.done = p.from, bound, true
			return page, nil
		case int64(len(page)) >= p.limit: // a full page, the window's last
			p.at, p.from, p.span = p.from, bound, span
			return page, nil
		}
		// The window held too few: on, wider, and faster each time, so
		// that a long gap costs few reads.
		from, span = bound, span.times(grow)
	}
}

// Again makes the next Next read the page just read once more (its keys
// changed under the caller, say).
func (p *Pager) Again() { p.from, p.done = p.at, false }

// bound is the end of the window from from spanning span: end itself
// when span is unknown, or when from+span reaches it or falls outside the
// keys (past the largest key of its width).
func (p *Pager) bound(from string, span *distance) string {
	if span == nil || p.end == "" {
		return p.end
	}
	b, ok := span.after(from)
	if !ok || b <= from || (p.end != "\x00" && b >= p.end) {
		return p.end
	}
	return b
}

// distance is how far apart two keys are, read as base-256 fractions
// (the bytes after the point): the difference of the keys as numbers of
// width bytes, padded with zeros.
type distance struct {
	n     *big.Int
	width int
}

// between is the distance from a to b (a < b), at least one unit of the
// last byte of the longer key.
func between(a, b string) *distance {
	w := max(len(a), len(b))
	n := new(big.Int).Sub(number(b, w), number(a, w))
	if n.Sign() <= 0 {
		n.SetInt64(1)
	}
	return &distance{n: n, width: w}
}

func (d *distance) times(k int64) *distance {
	if d == nil {
		return nil
	}
	return &distance{n: new(big.Int).Mul(d.n, big.NewInt(k)), width: d.width}
}

// after is the key d after k, at the width of the longer of the two;
// false when it is past every key of that width.
func (d *distance) after(k string) (string, bool) {
	w := max(len(k), d.width)
	n := new(big.Int).Lsh(d.n, uint(8*(w-d.width)))
	n.Add(n, number(k, w))
	if n.BitLen() > 8*w {
		return "", false
	}
	return string(n.FillBytes(make([]byte, w))), true
}

// number is k as a big-endian number of w bytes, padded with zeros.
func number(k string, w int) *big.Int {
	b := make([]byte, w)
	copy(b, k)
	return new(big.Int).SetBytes(b)
}
