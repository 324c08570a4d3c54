package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/conn"
)

// The v2 store has no way to say how large a directory is, and reading it
// one directory per request costs a round trip per directory: on a
// Gateway store of about one document per directory, that is most of a
// move. So a walk reads directories one level at a time only until it
// knows their size, and then reads whole subtrees in one request each:
//
//   - a directory with at least familyMin subdirectories (a "family":
//     buckets, objects, versions) has its first familySample
//     subdirectories walked a level at a time and measured;
//   - when none of them came to more than 1/sampleShare of the read
//     budget, its other subdirectories are read whole, one request each;
//   - a whole read whose answer passes the budget is dropped at the
//     budget (conn.Keys.Read stops reading) and that directory is walked
//     a level at a time instead; the walker remembers it, so the copy's
//     walk and a verification walk of one move pay for it once.
//
// Memory stays bounded by the largest directory or the read budget, never
// the store: walkWorkers answers of up to readBudget each in flight. etcd
// itself builds an answer whole, so a subtree much larger than its sampled
// siblings costs etcd one oversized answer (once per move) before rokup
// drops it; a store whose families differ that much can be moved a level
// at a time (MoveOptions.ReadBudget < 0).
//
// Sixteen reads in flight keep etcd's v2 side busy while the copy's
// writes wait on their commits (eight left the move waiting on its
// reads); the default budget is half what it was with eight, so the
// answers in flight still come to 32 MiB at most.
const (
	walkWorkers  = 16      // v2 reads in flight
	readBudget   = 2 << 20 // default bytes of one whole-subtree answer
	familyMin    = 8
	familySample = 2
	sampleShare  = 8
)

// subtreeReader is conn.Keys' Read: a directory one level deep, or its
// whole subtree in one request, dropped past max bytes.
type subtreeReader interface {
	Read(ctx context.Context, key string, recursive bool, max int64) (*clientv2.Node, uint64, error)
}

// walker walks the v2 tree under a prefix; one walker serves the walks of
// one move, so what one walk learnt about sizes the next one uses.
type walker struct {
	kapi   clientv2.KeysAPI
	tree   subtreeReader // nil: a level at a time, through kapi
	budget int64
	big    map[string]bool // subtrees found over the budget
	// floor is the cluster's v2 index read (through the leader) just
	// before a walk: a read answered at a lower index came from a member
	// still catching up (restarted, partitioned), which would show a v2
	// without writes the cluster already made. Such a read fails the walk
	// with ErrLagging before its documents are handed on. 0: no check.
	floor uint64
	// anyTree marks a walk of some other v2 tree (WalkV2), not of a
	// Gateway store: no hidden ledger is walked by name, a document at the
	// top is handed on, and the top's subdirectories may be a family.
	anyTree bool
	stats   WalkStats
}

// WalkV2 visits the v2 tree under dir as the move reads the Gateway's
// store (see the top of this file): whole subtrees in one request where
// their sampled siblings show them small, walkWorkers reads in flight,
// every answer bounded by the default read budget, and a plain KeysAPI
// (not a conn.Keys) a level at a time. fn gets leaves one read at a time,
// on the calling goroutine, in no set order; a dir that is itself a
// document is handed to fn alone, a missing one holds nothing. v2 lists
// no hidden name (_…), so none is visited. fn's error, or a read's (as
// conn.V2Error makes it), stops the walk.
//
// It is for trees of many small directories, where one request per
// directory costs a round trip each: the GC's walk of the Gateway's
// versions (one directory per object) took seconds that way at 200 000
// documents.
func WalkV2(ctx context.Context, kapi clientv2.KeysAPI, dir string, fn func(leaves []*clientv2.Node) error) error {
	w := newWalker(kapi, 0)
	w.anyTree = true
	_, err := w.walk(ctx, dir, fn, func(string) {})
	return err
}

// WalkStats counts a move's v2 reads.
type WalkStats struct {
	Reads   int64 `json:"reads"`   // requests
	Whole   int64 `json:"whole"`   // of which whole-subtree reads
	Dropped int64 `json:"dropped"` // whole reads over the budget, read again a level at a time
}

// newWalker reads through kapi, whole subtrees too when kapi can (a
// conn.Keys) and budget is not negative (0: the default).
func newWalker(kapi clientv2.KeysAPI, budget int64) *walker {
	w := &walker{kapi: kapi, budget: budget, big: map[string]bool{}}
	if budget == 0 {
		w.budget = readBudget
	}
	if t, ok := kapi.(subtreeReader); ok && w.budget > 0 {
		w.tree = t
	}
	return w
}

// walkJob is one read: dir a level deep, or its whole subtree; t is the
// tally of the sampled subtree it belongs to, if any.
type walkJob struct {
	dir   string
	whole bool
	t     *tally
}

type walkResult struct {
	job   walkJob
	node  *clientv2.Node // nil: not found
	index uint64
	err   error
}

// tally measures a sampled subtree: the bytes read under it and the reads
// (its own jobs and sub-tallies) still to come.
type tally struct {
	up      *tally
	fam     *family // the family it is a sample of
	pending int
	bytes   int64
}

// family holds a directory's subdirectories past the samples until the
// samples are measured.
type family struct {
	t       *tally // the tally the family's reads count toward (may be nil)
	rest    []string
	samples int // samples not measured yet
	max     int64
}

// walk visits the v2 tree under prefix. fn gets leaves, on the calling
// goroutine, in no fixed order: a directory's (or a whole subtree's) at a
// time. empty is called for every empty directory. The hidden _migrations
// subtree, invisible in listings, is walked by name; other hidden names
// (such as _alive) are not. walk returns the lowest v2 index its reads
// saw: the index at the start.
func (w *walker) walk(ctx context.Context, prefix string,
	fn func(leaves []*clientv2.Node) error, empty func(dir string)) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan walkJob, walkWorkers)
	results := make(chan walkResult, walkWorkers)
	for i := 0; i < walkWorkers; i++ {
		go func() {
			for j := range jobs {
				results <- w.read(ctx, j)
			}
		}()
	}
	defer close(jobs)

	var (
		index    uint64
		firstErr error
		queue    jobQueue
		inflight int
		open     int // families whose samples are not measured yet
	)
	var done func(t *tally)
	release := func(f *family) {
		whole := f.max*sampleShare <= w.budget
		lane := make([]walkJob, len(f.rest))
		for i, dir := range f.rest {
			lane[i] = walkJob{dir: dir, whole: whole && !w.big[dir], t: f.t}
		}
		queue.addLane(lane)
		f.rest = nil
		open--
		done(f.t) // the family's hold
	}
	done = func(t *tally) {
		if t == nil {
			return
		}
		if t.pending--; t.pending > 0 {
			return
		}
		if t.up != nil {
			t.up.bytes += t.bytes
		}
		if f := t.fam; f != nil {
			f.max = max(f.max, t.bytes)
			if f.samples--; f.samples == 0 {
				release(f)
			}
		}
		done(t.up)
	}
	fail := func(err error) {
		firstErr = err
		cancel()
	}

	queue.push(walkJob{dir: prefix})
	if !w.anyTree {
		queue.push(walkJob{dir: strings.TrimSuffix(ledgerDir(prefix), "/")})
	}
	for inflight > 0 || (!queue.empty() && firstErr == nil) {
		for inflight < walkWorkers && !queue.empty() && firstErr == nil {
			j := queue.pop()
			jobs <- j
			inflight++
			w.stats.Reads++
			if j.whole {
				w.stats.Whole++
			}
		}
		r := <-results
		inflight--
		if firstErr != nil {
			continue // draining
		}
		if r.err == nil {
			r.err = ctx.Err()
		}
		if errors.Is(r.err, conn.ErrTooBig) {
			// Too large to read whole: a level at a time, now and in
			// the later walks of this move.
			w.big[r.job.dir] = true
			w.stats.Dropped++
			queue.push(walkJob{dir: r.job.dir, t: r.job.t})
			done(r.job.t)
			continue
		}
		if r.err != nil {
			fail(r.err)
			continue
		}
		if r.index != 0 && r.index < w.floor {
			fail(fmt.Errorf("%w: a read of v2 %s answered at index %d, behind the cluster's %d taken just before the walk; nothing was recorded; re-run (the member will have caught up)", ErrLagging, r.job.dir, r.index, w.floor))
			continue
		}
		if r.index != 0 && (index == 0 || r.index < index) {
			index = r.index
		}
		j, n := r.job, r.node
		if n == nil {
			done(j.t)
			continue
		}
		if j.t != nil {
			j.t.bytes += nodeBytes(n, j.whole)
		}
		if !n.Dir {
			if j.dir == prefix && !w.anyTree {
				fail(fmt.Errorf("gateway: v2 %s is a document, not a directory", prefix))
				continue
			}
			if err := fn([]*clientv2.Node{n}); err != nil {
				fail(err)
			}
			done(j.t)
			continue
		}
		if j.whole {
			if err := fn(flatten(n, nil, empty)); err != nil {
				fail(err)
			}
			done(j.t)
			continue
		}
		if len(n.Nodes) == 0 && j.dir != prefix {
			empty(j.dir)
			done(j.t)
			continue
		}
		var dirs []string
		for _, c := range n.Nodes {
			if c.Dir {
				dirs = append(dirs, c.Key)
			}
		}
		// The prefix's own subdirectories are kinds of documents (buckets,
		// objects, versions), not a family of alike ones: one of them
		// may hold most of the store, so none is read whole.
		if w.tree != nil && len(dirs) >= familyMin && (j.dir != prefix || w.anyTree) {
			open++
			f := &family{t: j.t, rest: dirs[familySample:], samples: familySample}
			if f.t != nil {
				f.t.pending++ // held until the samples are measured
			}
			for i := familySample - 1; i >= 0; i-- {
				queue.push(walkJob{dir: dirs[i], t: &tally{up: j.t, fam: f}})
				if j.t != nil {
					j.t.pending++ // the sample's tally reports to j.t
				}
			}
		} else {
			for i := len(dirs) - 1; i >= 0; i-- {
				queue.push(walkJob{dir: dirs[i], t: j.t})
			}
		}
		if leaves := leavesOf(n); len(leaves) > 0 {
			if err := fn(leaves); err != nil {
				fail(err)
				continue
			}
		}
		done(j.t)
	}
	if firstErr == nil && open > 0 {
		// Every job ran, so every sample was measured and every family
		// released; a family still open would be directories never read.
		return index, fmt.Errorf("gateway: walk of %s ended with %d directory families unread (a rokup bug; re-run with --level-reads)", prefix, open)
	}
	return index, firstErr
}

// jobQueue orders a walk's reads. The reads that find work (directories
// a level at a time, a family's samples) go first, the last one pushed
// first; then the members of the released families, the families in
// turn. Families differ in what their documents cost the copy: a family
// of small documents, one per directory (a Gateway's versions), costs it v2
// reads, one of larger documents (its objects) v3 writes. Read one family
// after the other, the copy waited on its reads through the first and its
// reads waited on its writes through the second; in turn, both keep going.
type jobQueue struct {
	stack []walkJob
	lanes [][]walkJob // a released family's members each, in order
	next  int         // the lane whose turn it is
}

// push queues j; its tally then waits for it.
func (q *jobQueue) push(j walkJob) {
	j.queued()
	q.stack = append(q.stack, j)
}

// addLane queues a released family's members; their tallies then wait
// for them.
func (q *jobQueue) addLane(lane []walkJob) {
	for _, j := range lane {
		j.queued()
	}
	if len(lane) > 0 {
		q.lanes = append(q.lanes, lane)
	}
}

// queued counts j as pending on its tally, if it has one.
func (j walkJob) queued() {
	if j.t != nil {
		j.t.pending++
	}
}

func (q *jobQueue) empty() bool { return len(q.stack) == 0 && len(q.lanes) == 0 }

// pop takes the next read; the queue must not be empty.
func (q *jobQueue) pop() walkJob {
	if n := len(q.stack); n > 0 {
		j := q.stack[n-1]
		q.stack = q.stack[:n-1]
		return j
	}
	q.next %= len(q.lanes)
	lane := q.lanes[q.next]
	if len(lane) == 1 {
		q.lanes = slices.Delete(q.lanes, q.next, q.next+1)
	} else {
		q.lanes[q.next] = lane[1:]
		q.next++
	}
	return lane[0]
}

// read does one job's request.
func (w *walker) read(ctx context.Context, j walkJob) walkResult {
	r := walkResult{job: j}
	var err error
	if w.tree != nil {
		var max int64
		if j.whole {
			max = w.budget
		}
		r.node, r.index, err = w.tree.Read(ctx, j.dir, j.whole, max)
	} else {
		var resp *clientv2.Response
		if resp, err = w.kapi.Get(ctx, j.dir, nil); err == nil {
			r.node, r.index = resp.Node, resp.Index
		}
	}
	switch {
	case err == nil:
	case clientv2.IsKeyNotFound(err):
		r.index = errIndex(err)
	case errors.Is(err, conn.ErrTooBig):
		r.err = err
	default:
		r.err = fmt.Errorf("gateway: read v2 %s: %w", j.dir, conn.V2Error(err))
	}
	return r
}

// nodeBytes estimates the answer size of a read: keys, values and about
// 96 bytes of JSON per node.
func nodeBytes(n *clientv2.Node, whole bool) int64 {
	b := int64(len(n.Key) + len(n.Value) + 96)
	for _, c := range n.Nodes {
		if whole {
			b += nodeBytes(c, true)
		} else {
			b += int64(len(c.Key) + len(c.Value) + 96)
		}
	}
	return b
}

// flatten appends the documents of a subtree read whole, and reports its
// empty directories.
func flatten(n *clientv2.Node, leaves []*clientv2.Node, empty func(string)) []*clientv2.Node {
	if !n.Dir {
		return append(leaves, n)
	}
	if len(n.Nodes) == 0 {
		empty(n.Key)
	}
	for _, c := range n.Nodes {
		leaves = flatten(c, leaves, empty)
	}
	return leaves
}

func leavesOf(n *clientv2.Node) []*clientv2.Node {
	if !n.Dir {
		return []*clientv2.Node{n}
	}
	var leaves []*clientv2.Node
	for _, c := range n.Nodes {
		if !c.Dir {
			leaves = append(leaves, c)
		}
	}
	return leaves
}

func errIndex(err error) uint64 {
	if e, ok := err.(clientv2.Error); ok {
		return e.Index
	}
	return 0
}

// digest is an order-independent checksum of (key, value) pairs: the XOR
// of one SHA-256 per pair. Keys are unique, so no pair cancels another;
// the walk's order and v3's order may differ and the sum still agrees.
type digest struct {
	n     int64
	bytes int64
	sum   [sha256.Size]byte
}

func pairHash[T string | []byte](k, v T) [sha256.Size]byte {
	b := hashBufs.Get().(*[]byte)
	buf := binary.BigEndian.AppendUint64((*b)[:0], uint64(len(k)))
	buf = append(append(buf, k...), v...)
	h := sha256.Sum256(buf)
	*b = buf
	hashBufs.Put(b)
	return h
}

// hashBufs hold what pairHash hashes: the key's length, the key and the
// value in one buffer, hashed in one call (a hasher and its copies of
// the strings, per document, were a tenth of the move's client time).
var hashBufs = sync.Pool{New: func() any { return new([]byte) }}

func (d *digest) addHash(h [sha256.Size]byte, size int) {
	for i := range h {
		d.sum[i] ^= h[i]
	}
	d.n++
	d.bytes += int64(size)
}

func (d *digest) add(k, v string) { d.addHash(pairHash(k, v), len(v)) }

// merge folds o into d: the digest of the union of two disjoint sets.
func (d *digest) merge(o digest) {
	for i := range o.sum {
		d.sum[i] ^= o.sum[i]
	}
	d.n += o.n
	d.bytes += o.bytes
}

func (d digest) String() string {
	return fmt.Sprintf("sha256x:%d:%s", d.n, hex.EncodeToString(d.sum[:]))
}

// CheckV2 proves the v2 store answers under prefix, so a server without
// the v2 API, or an unreachable one, is one clear error before any work.
func CheckV2(ctx context.Context, kapi clientv2.KeysAPI, prefix string) error {
	_, err := kapi.Get(ctx, cleanPrefix(prefix), nil)
	if err == nil || clientv2.IsKeyNotFound(err) {
		return nil
	}
	return fmt.Errorf("etcd v2 store: %w", conn.V2Error(err))
}
