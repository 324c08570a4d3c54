package gateway

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// readBack reads v3 back for verify: the walk hands it documents one
// directory at a time, and it gathers them across directories into one
// read transaction of up to MaxTxnOps gets (and about MaxRequestBytes of
// values), read by InFlight goroutines. One transaction per directory
// cost a round trip per document on stores of one document a directory.
// Memory: the group being filled plus 2×InFlight groups queued or read.
type readBack struct {
	ctx    context.Context
	cancel context.CancelFunc
	m      *mover
	total  int64

	jobs  chan []readDoc
	wg    sync.WaitGroup
	pend  []readDoc
	bytes int

	mu            sync.Mutex // guards the fields below and serialises progress
	v3sum         digest
	done          int64
	expired       int64    // expiring in v2, absent from v3
	changed       int64    // v2 documents written after the copy read them
	changes       []string // the first listMax of them, named
	mismatches    int64    // v3 keys that do not hold their unchanged v2 bytes
	firstMismatch []string
	err           error
}

// readDoc is one v2 document to find in v3, h its pair hash.
type readDoc struct {
	n *clientv2.Node
	h [sha256.Size]byte
}

func newReadBack(ctx context.Context, m *mover, total int64) *readBack {
	ctx, cancel := context.WithCancel(ctx)
	r := &readBack{ctx: ctx, cancel: cancel, m: m, total: total, jobs: make(chan []readDoc, m.opts.InFlight)}
	for i := 0; i < m.opts.InFlight; i++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			// After a failure the queue is drained, not read, so add
			// never blocks on a reader that has stopped.
			for g := range r.jobs {
				if r.ctx.Err() != nil {
					continue
				}
				if err := r.check(g); err != nil {
					r.fail(err)
				}
			}
		}()
	}
	return r
}

// add queues one document; it returns the first reading error, if any.
func (r *readBack) add(d readDoc) error {
	size := len(d.n.Key) + len(d.n.Value)
	if len(r.pend) >= r.m.opts.MaxTxnOps || (len(r.pend) > 0 && r.bytes+size > r.m.opts.MaxRequestBytes) {
		if err := r.flush(); err != nil {
			return err
		}
	}
	r.pend = append(r.pend, d)
	r.bytes += size
	return nil
}

func (r *readBack) flush() error {
	if err := r.failed(); err != nil {
		return err
	}
	if len(r.pend) > 0 {
		select {
		case r.jobs <- r.pend:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	r.pend, r.bytes = nil, 0
	return nil
}

// close reads what is pending, waits for the readers, and returns the
// first error.
func (r *readBack) close() error {
	err := r.flush()
	close(r.jobs)
	r.wg.Wait()
	r.cancel()
	if ferr := r.failed(); ferr != nil {
		return ferr
	}
	return err
}

func (r *readBack) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.cancel()
}

func (r *readBack) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// check reads one group from v3 and compares it byte for byte.
func (r *readBack) check(g []readDoc) error {
	gets := make([]clientv3.Op, len(g))
	for i, d := range g {
		gets[i] = clientv3.OpGet(d.n.Key)
	}
	rr, err := r.m.cli.Txn(r.ctx).Then(gets...).Commit()
	if err != nil {
		return fmt.Errorf("gateway: verify: read v3 %s: %w", g[0].n.Key, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, d := range g {
		kvs := rr.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 1 && string(kvs[0].Value) == d.n.Value {
			r.v3sum.addHash(d.h, len(d.n.Value))
			continue
		}
		if len(kvs) == 0 && d.n.Expiration != nil && time.Until(*d.n.Expiration) < expiryMargin {
			r.expired++ // expiring in both stores
			continue
		}
		if i0 := r.m.rep.V2Index; d.n.ModifiedIndex > i0 {
			// Written after the move began, so after the copy read it:
			// the copy would have failed on it.
			if r.changed++; len(r.changes) < listMax {
				what := "written in v2 at index %d, after the move copied it"
				if len(kvs) == 0 {
					what = "created in v2 at index %d, after the move read its directory"
				}
				r.changes = append(r.changes, d.n.Key+" was "+fmt.Sprintf(what, d.n.ModifiedIndex))
			}
			continue
		}
		r.mismatches++
		if len(r.firstMismatch) < 3 {
			r.firstMismatch = append(r.firstMismatch, d.n.Key)
		}
	}
	r.done += int64(len(g))
	r.m.progress("verify", r.done, r.total, 0)
	return nil
}
