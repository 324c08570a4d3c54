package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

// sweep walks scope's storage and collects what the mark did not reach.
func (g *run) sweep(ctx context.Context, scope libmap.Scope) error {
	phase := "sweep " + string(scope)
	g.progress(phase)
	skip := g.incomplete[scope] != ""
	err := g.cfg.Layout.Scan(ctx, scope, func(e composer.Entry) error {
		if !e.Valid() {
			g.bad(e)
			return nil
		}
		g.count(func(r *Report) { r.Scanned++ })
		if g.reached(scope, e.Name) || skip {
			g.count(func(r *Report) { r.Reachable++ })
			return nil
		}
		id := scope.ID(g.cfg.Node, e.Name)
		g.pending = append(g.pending, candidate{scope: scope, id: id, path: e.Path, key: g.cfg.Cache.Key(scope, id)})
		if len(g.pending) >= lookupPage {
			if err := g.flush(ctx); err != nil {
				return err
			}
			g.progress(phase)
		}
		return nil
	}, composer.WithoutRefs())
	if errors.Is(err, composer.ErrNoScopeDir) {
		err = nil
	}
	if err == nil {
		err = g.flush(ctx)
	}
	return err
}

// flush hands the pending candidates to the lookup workers.
func (g *run) flush(ctx context.Context) error {
	if len(g.pending) == 0 {
		return g.lookupFailed()
	}
	page := g.pending
	g.pending = nil
	select {
	case g.pages <- page:
	case <-ctx.Done():
		if err := g.lookupFailed(); err != nil {
			return err
		}
		return ctx.Err()
	}
	return g.lookupFailed()
}

func (g *run) lookupFailed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lookupErr
}

// decide reads the epochs of a page of candidates in one read-only
// transaction and decides each: stamp, keep, or collect.
func (g *run) decide(ctx context.Context, page []candidate) error {
	ops := make([]clientv3.Op, len(page))
	for i, c := range page {
		ops[i] = clientv3.OpGet(c.key)
	}
	step(StepDecide, page[0].path)
	resp, err := g.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("gc: read %d epochs: %w", len(page), err)
	}
	for i, c := range page {
		kvs := resp.Responses[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			if err := g.noV3Epoch(ctx, c); err != nil {
				return err
			}
			continue
		}
		ep, err := libmap.ParseEpoch(kvs[0].Value) // a bad epoch key is reported and its object kept
		switch {
		case err != nil:
			g.badf("%s: epoch key %s: %v (kept)", c.path, c.key, err)
		case ep >= g.epoch:
			g.count(func(r *Report) { r.TooRecent++ })
		default:
			e := libmap.Entry{Scope: c.scope, ID: c.id, Epoch: ep, ModRevision: kvs[0].ModRevision}
			if err := g.collect(c, batch.Item{
				Cmps: []clientv3.Cmp{g.cfg.Cache.Unchanged(e)},
				Ops:  []clientv3.Op{g.cfg.Cache.OpDelete(e)},
				Size: len(c.key),
			}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// noV3Epoch handles an unreachable object without a v3 epoch: stamped with
// G and kept, unless the pre-upgrade mode finds an old v2 epoch for it.
func (g *run) noV3Epoch(ctx context.Context, c candidate) error {
	if g.cfg.V2Epochs {
		idx, ok, err := g.v2Epoch(ctx, c)
		if err != nil {
			return err
		}
		if ok {
			if idx > g.v2Start {
				g.count(func(r *Report) { r.TooRecent++ })
				return nil
			}
			// No ops in v3: the transaction only proves the fence is
			// absent, the instance holds, and no v3 epoch appeared; the
			// v2 compare-and-delete follows. A fence set between the two
			// lets this one deletion through: the pre-collection runs
			// before the upgrade sets its fence, so this is accepted.
			return g.collect(c, batch.Item{
				Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0)},
				Size: len(c.key),
			}, func() bool { return g.v2Delete(ctx, c, idx) })
		}
	}
	g.count(func(r *Report) { r.NoEpoch++ })
	if g.cfg.DryRun {
		return nil
	}
	g.addMu.Lock()
	defer g.addMu.Unlock()
	return g.stamp.Add(batch.Item{
		Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0)},
		Ops:  []clientv3.Op{clientv3.OpPut(c.key, strconv.FormatUint(g.epoch, 10))},
		Size: len(c.key) + 20,
	})
}

// collect queues the deletion of c: it.Cmps and it.Ops are the object's own
// compare and epoch-key delete; the writer adds the fence, instance and
// guard compares. pre, if set, runs after the transaction and before the
// file goes, and may veto it (the v2 compare-and-delete).
//
// The file is moved aside right before the transaction is sent and removed
// only once it committed; a transaction that fails (a touch won, the fence
// was set) or may have failed puts it back. See the package doc for why
// this order is what keeps a composer's write safe.
func (g *run) collect(c candidate, it batch.Item, pre func() bool) error {
	if g.cfg.DryRun {
		g.count(func(r *Report) {
			r.WouldDelete++
			r.Listed = listAppend(r.Listed, c.path)
		})
		return nil
	}
	if testHookCollect != nil {
		testHookCollect(c.path)
	}
	_, name := c.scope.SplitID(c.id)
	d := &deletion{g: g, c: c, tombs: g.tombs[c.scope], name: name, pre: pre}
	it.Prepare, it.Done, it.Abandon = d.prepare, d.done, d.abandon
	g.addMu.Lock()
	defer g.addMu.Unlock()
	return g.del.Add(it)
}

// testHookRemove lets tests hold the removal of a committed deletion's
// file.
var testHookRemove func(path string)

// testHookCollect lets tests act between the scan and a deletion.
var testHookCollect func(path string)

// The steps of one object's collection, as testHookStep names them: the
// hook is called before each.
const (
	StepDecide = "decide" // read the epochs of a page of candidates
	StepAside  = "aside"  // move the file aside
	StepDelete = "delete" // the guarded transaction deleting the epoch key
	StepFinish = "finish" // remove the file set aside, or put it back
)

// testHookStep lets tests interleave a run with other processes step by
// step.
var testHookStep func(step, path string)

func step(name, path string) {
	if testHookStep != nil {
		testHookStep(name, path)
	}
}

// deletion is one object on its way out. Its methods run on one writer
// goroutine at a time: prepare before the transaction, then done if it
// committed or abandon if it did not (or may not have).
type deletion struct {
	g     *run
	c     candidate
	tombs *tombs // where the file is set aside,
	name  string // under this name
	pre   func() bool
	// aside is true while the file is set aside.
	aside bool
}

// prepare moves the file aside. An object whose file is already gone still
// has its epoch key deleted (an epoch key without its file is what the GC
// must never leave); a file that cannot be moved is kept, with its key.
func (d *deletion) prepare() bool {
	step(StepAside, d.c.path)
	defer d.g.fileTime(time.Now())
	vanished, err := d.tombs.setAside(d.c.path, d.name)
	if err != nil {
		d.g.count(func(r *Report) {
			r.Errors++
			r.ErrorList = listAppend(r.ErrorList, err.Error()+" (kept)")
		})
		return false
	}
	d.aside = !vanished
	step(StepDelete, d.c.path)
	return true
}

// done runs once the epoch key's deletion committed: the file set aside
// goes, by the removers (see remove). A composer told "missing" from now
// on writes the object again at its own path, which this never touches.
func (d *deletion) done() {
	step(StepFinish, d.c.path)
	if d.pre != nil && !d.pre() {
		d.abandon()
		return
	}
	if !d.aside {
		d.g.count(func(r *Report) { r.Deleted++; r.Vanished++ })
		return
	}
	d.aside = false
	d.g.removals <- d
}

// remove removes the file of a committed deletion from where it was set
// aside. The removers do it, Removers at once, rather than the writer
// whose transaction committed: a removal waits on the file system (on a
// disk that discards freed blocks, for the journal's next commit), and a
// writer removing its own 128 files one after the other would keep the
// next transaction, and the other removals, waiting behind each.
func (d *deletion) remove() {
	if testHookRemove != nil {
		testHookRemove(d.c.path)
	}
	t0 := time.Now()
	size, err := d.tombs.remove(d.name)
	d.g.fileTime(t0)
	d.g.count(func(r *Report) {
		r.Deleted++
		switch {
		case err == nil:
			r.BytesFreed += size
		case errors.Is(err, fs.ErrNotExist):
			r.Vanished++ // put back by a recovery while this run was paused
		default:
			// The epoch key is gone and the file is aside, out of every
			// composer's way: the next recovery puts it back, the next
			// run stamps it and a later one collects it.
			r.Errors++
			r.ErrorList = listAppend(r.ErrorList, err.Error())
		}
	})
}

// abandon puts the file back: the deletion did not commit, or may not
// have. Never over a file written since (putBack does not replace).
func (d *deletion) abandon() {
	if !d.aside {
		return
	}
	step(StepFinish, d.c.path)
	_, err := putBack(d.tombs.path(d.name), d.c.path)
	d.aside = false
	if err != nil {
		d.g.count(func(r *Report) {
			r.Errors++
			r.ErrorList = listAppend(r.ErrorList, err.Error()+" (the next recovery retries)")
		})
	}
}

// resolve is called when a transaction of the writers failed and the
// guard still holds: it tells a fence or a lost instance (stop) from an
// object that changed under us (kept), committing the others one by one.
//
// The writer has put every file back already (Abandon), so the one whose
// touch won the race is in place again after one round trip, not after its
// turn below; each object committed again is set aside again (Prepare).
func (g *run) resolve(ctx context.Context, items []batch.Item) error {
	if err := g.stopped(ctx); err != nil {
		return err
	}
	for _, it := range items {
		if it.Prepare != nil && !it.Prepare() {
			continue
		}
		resp, err := g.cli.Txn(ctx).If(append(append([]clientv3.Cmp{}, g.cmps...), it.Cmps...)...).Then(it.Ops...).Commit()
		if err == nil && resp.Succeeded {
			if it.Done != nil {
				it.Done()
			}
			continue
		}
		if it.Abandon != nil {
			it.Abandon()
		}
		if err != nil {
			return fmt.Errorf("gc: commit one object: %w", err)
		}
		if err := g.stopped(ctx); err != nil {
			return err
		}
		if it.Done != nil { // a deletion: the object was touched or stamped since read
			g.count(func(r *Report) { r.TooRecent++ })
		}
	}
	return nil
}

// fileTime adds the time since t0 to the writers' time on files.
func (g *run) fileTime(t0 time.Time) { g.fileNanos.Add(int64(time.Since(t0))) }
