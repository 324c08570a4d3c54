package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The move's verification overlapped with its copy: a v3 watch on the
// prefix, from just after the run opened, folds every change etcd makes
// there into a digest while the copy writes. When the copy is done, the
// watch already holds what a read-back of v3 would read, and the
// verification is a few small reads instead of reading every document
// again.
//
// Why it proves as much as the read-back (fastVerify), which compares the
// digest of the v3 pairs under the prefix at one revision E after the
// copy with the digest of what the copy read from v2 (unchanged since I0):
//
//   - At the run's opening revision S the prefix held ledger keys only
//     (counted at S once the copy is done; else the watch is not used: a
//     resumed move finds its documents there already, and only a
//     read-back sees them).
//   - The watch starts at S+1 and etcd sends every change under the prefix
//     in revision order, none left out; a compaction past S+1 cancels it.
//   - Every change must create a key (a put of version 1): a put over an
//     existing key, a delete, an expired lease, anything else spoils the
//     watch and the read-back decides. So the prefix at E holds the keys
//     of S and the keys created since, each with its created bytes, and
//     the documents (the keys outside the ledger) are exactly the pairs
//     the watch folded: their digest and count stand for v3's.
//   - E is the revision of a read made after the copy's last write (the
//     ledger documents and the prefix's key counts are read at E), and
//     the watch is only trusted once etcd notified its progress through E
//     (RequestProgress): every change up to E was delivered before it.
//     etcd sends that notification behind the events only since 3.5.13
//     (etcd#15220, #17507), so an older member means no watch.
//
// An adversary writing under the prefix at any time from S to E spoils the
// watch (a create of a key v2 does not hold makes the digests differ), and
// the read-back runs as before; a write after E is after the verification,
// for either. A kill at any point leaves the run open and unrecorded, as
// before: nothing of the watch is kept.

// v3Watch is the watch of one run of the move.
type v3Watch struct {
	cli    *clientv3.Client
	ctx    context.Context // the watch's stream: RequestProgress goes there
	cancel context.CancelFunc
	from   int64 // the run's opening revision S; the watch starts after it
	ledger []byte
	done   chan struct{} // closed when the watch ended
	seen   chan struct{} // a progress notification arrived (capacity 1)

	mu       sync.Mutex // guards the fields below
	docs     digest     // creates outside the ledger
	spoiled  string     // why the watch cannot stand for a read-back
	progress int64      // the last revision etcd notified progress through
	stopping bool       // stop was called: the watch's end is no news
}

// watchMinVersion is the first etcd whose progress notifications follow
// the events they vouch for.
var watchMinVersion = [3]int{3, 5, 13}

// startWatch begins the watch of the run opened at revision s; it returns
// a spoiled watch when it cannot be used (see spoil). It never fails the
// move: without a watch the read-back verifies.
func (m *mover) startWatch(ctx context.Context, s int64) *v3Watch {
	wctx, cancel := context.WithCancel(ctx)
	w := &v3Watch{cli: m.cli, ctx: wctx, cancel: cancel, from: s, ledger: []byte(ledgerDir(m.opts.Prefix)),
		done: make(chan struct{}), seen: make(chan struct{}, 1)}
	if why := m.watchable(ctx); why != "" {
		w.spoiled = why
		close(w.done)
		return w
	}
	ch := m.cli.Watch(wctx, m.opts.Prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(s+1))
	go w.run(ch)
	return w
}

// watchable says why a watch cannot stand for a read-back ("" when it
// can): a member too old for it.
func (m *mover) watchable(ctx context.Context) string {
	for _, ep := range m.cli.Endpoints() {
		sctx, cancel := context.WithTimeout(ctx, statusWait)
		st, err := m.cli.Status(sctx, ep)
		cancel()
		if err != nil {
			return fmt.Sprintf("status of %s: %v", ep, err)
		}
		if !atLeast(st.Version, watchMinVersion) {
			return fmt.Sprintf("etcd %s at %s sends progress notifications ahead of events", st.Version, ep)
		}
	}
	return ""
}

// statusWait bounds the look at one endpoint's version: an endpoint
// down costs the move its watch, not its time.
const statusWait = 5 * time.Second

// atLeast reports whether version v ("3.5.13") is at least min.
func atLeast(v string, min [3]int) bool {
	parts := strings.SplitN(v, ".", 3)
	for i := range min {
		if i >= len(parts) {
			return false
		}
		n, err := strconv.Atoi(strings.TrimFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' }))
		if err != nil {
			return false
		}
		if n != min[i] {
			return n > min[i]
		}
	}
	return true
}

// run folds the watch's events until it ends.
func (w *v3Watch) run(ch clientv3.WatchChan) {
	defer close(w.done)
	for resp := range ch {
		w.mu.Lock()
		switch {
		case resp.CompactRevision != 0:
			w.spoilLocked(fmt.Sprintf("v3 was compacted at %d under the watch", resp.CompactRevision))
		case resp.Canceled || resp.Err() != nil:
			w.spoilLocked(fmt.Sprintf("the watch ended: %v", resp.Err()))
		}
		for _, ev := range resp.Events {
			w.fold(ev)
		}
		progress := resp.IsProgressNotify()
		if progress {
			w.progress = max(w.progress, resp.Header.Revision)
		}
		w.mu.Unlock()
		if progress {
			select {
			case w.seen <- struct{}{}:
			default:
			}
		}
	}
	w.mu.Lock()
	if !w.stopping {
		w.spoilLocked("the watch ended")
	}
	w.mu.Unlock()
}

// fold adds one change: a create of a document goes into the digest (a
// create in the ledger is checked at E instead), anything else spoils the
// watch.
func (w *v3Watch) fold(ev *clientv3.Event) {
	kv := ev.Kv
	if ev.Type != mvccpb.PUT || kv.Version != 1 {
		w.spoilLocked(fmt.Sprintf("%s %s at revision %d", ev.Type, kv.Key, kv.ModRevision))
		return
	}
	if !bytes.HasPrefix(kv.Key, w.ledger) {
		w.docs.addHash(pairHash(kv.Key, kv.Value), len(kv.Value))
	}
}

func (w *v3Watch) spoilLocked(why string) {
	if w.spoiled == "" {
		w.spoiled = why
	}
}

// stop ends the watch and waits for its goroutine.
func (w *v3Watch) stop() {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	w.cancel()
	<-w.done
}

// through waits until etcd notified the watch's progress through rev:
// every change up to rev has been folded then. It gives up (false) when
// the watch is spoiled or no notification comes within watchWait.
func (w *v3Watch) through(ctx context.Context, rev int64) (bool, error) {
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	// The watch's own stream (its context's metadata picks it), bounded:
	// a request to a stuck stream gives up with the wait.
	pctx, cancel := context.WithTimeout(w.ctx, watchWait)
	defer cancel()
	for {
		w.mu.Lock()
		ok, spoiled := w.progress >= rev, w.spoiled != ""
		w.mu.Unlock()
		if spoiled {
			return false, nil
		}
		if ok {
			return true, nil
		}
		if err := w.cli.RequestProgress(pctx); err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, nil
		}
		// etcd answers once the watch is in sync, at its member's
		// revision: a member behind rev is asked again.
		retry := time.NewTimer(200 * time.Millisecond)
		select {
		case <-w.seen:
			time.Sleep(5 * time.Millisecond)
		case <-retry.C:
		case <-w.done:
		case <-deadline.C:
			retry.Stop()
			return false, nil
		case <-ctx.Done():
			retry.Stop()
			return false, ctx.Err()
		}
		retry.Stop()
	}
}

// watchWait bounds the wait for the watch to catch up; past it the
// read-back verifies.
const watchWait = 30 * time.Second

// watchVerify is fastVerify from the watch (see the top of this file):
// when v2's index is still I0 (index) and the watch holds every change
// under the prefix through a revision E read after the copy, v3's
// documents at E are the pairs it folded. It returns false, nil when the
// watch cannot tell, and the read-back decides.
func (m *mover) watchVerify(ctx context.Context, index uint64) (bool, error) {
	w := m.watch
	if w == nil || index == 0 || index != m.rep.V2Index {
		return false, nil
	}
	defer w.stop()
	w.mu.Lock()
	spoiled := w.spoiled != ""
	w.mu.Unlock()
	if spoiled {
		return false, nil
	}
	// E: a revision after the copy's last write, for the ledger documents
	// v2 holds and the counts; the counts at S too.
	p, l := m.opts.Prefix+"/", ledgerDir(m.opts.Prefix)
	e, err := m.v3Revision(ctx)
	if err != nil {
		return false, err
	}
	ops := []clientv3.Op{
		clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(w.from)),
		clientv3.OpGet(l, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(w.from)),
		clientv3.OpGet(p, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(e)),
		clientv3.OpGet(l, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(e)),
	}
	ops = append(ops, m.ledgerGets(e)...)
	resp, err := m.cli.Txn(ctx).Then(ops...).Commit()
	if errors.Is(err, rpctypes.ErrCompacted) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gateway: verify: read v3 under %s: %w", m.opts.Prefix, err)
	}
	count := func(i int) int64 { return resp.Responses[i].GetResponseRange().Count }
	if count(0) != count(1) {
		return false, nil // documents under the prefix before the run: read them back
	}
	ledger, ok := m.ledgerHolds(resp.Responses[4:])
	if !ok {
		return false, nil
	}
	if ok, err := w.through(ctx, e); err != nil || !ok {
		return false, err
	}
	w.stop() // nothing folded after this
	w.mu.Lock()
	got, spoiled := w.docs, w.spoiled != ""
	w.mu.Unlock()
	if spoiled || count(2)-count(3) != got.n {
		return false, nil
	}
	got.merge(ledger)
	if got.n != m.read.n || got.sum != m.read.sum {
		return false, nil
	}
	m.progress("verify", got.n, got.n, 0)
	m.rep.Checksum = got.String()
	m.rep.Docs = got.n
	m.rep.FastVerify = true
	m.rep.WatchVerify = true
	m.rep.VerifiedIndex = index
	return true, nil
}
