package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/internal/backoff"
)

// errAborted is the cancel cause of a run the operator aborted.
var errAborted = errors.New("upgrade: aborted by the operator")

// leader is one leadership term's work. Its guard is the term: every
// write of the run's records carries it.
type leader struct {
	*Sidecar
	guard fencing.Guard
	since time.Time

	active *drive // the run being driven, if any
}

type drive struct {
	id     string
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// lead handles control writes and drives runs until ctx ends (leadership
// lost) or a write fails because the term g ended.
func (s *Sidecar) lead(ctx context.Context, g fencing.Guard) error {
	l := &leader{Sidecar: s, guard: g, since: time.Now().UTC()}
	events := watchControl(ctx, s.cli, s.cfg.Keys.Control(), s.lg)
	defer l.stop()
	for {
		if l.active == nil {
			if err := l.resume(ctx); err != nil {
				if errors.Is(err, fencing.ErrNotLeader) {
					return err
				}
				s.lg.Warn("look for runs to resume", zap.Error(err))
			}
		}
		var done chan struct{}
		if l.active != nil {
			done = l.active.done
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return ctx.Err()
			}
			if err := l.handleControl(ctx, ev); err != nil {
				if errors.Is(err, fencing.ErrNotLeader) {
					return err
				}
				// The control write stays unhandled; the next event (or the
				// next term) handles it again.
				s.lg.Warn("handle control write", zap.Int64("rev", ev.Rev), zap.Error(err))
			}
		case <-done:
			l.active = nil
		case <-time.After(2 * time.Second):
			// Periodically re-check for runs to resume (a failed save).
		}
	}
}

func (l *leader) stop() {
	if l.active != nil {
		l.active.cancel(context.Canceled)
		<-l.active.done
		l.active = nil
	}
}

// resume starts driving the run left running by an earlier term.
func (l *leader) resume(ctx context.Context) error {
	runs, err := l.store.Runs(ctx)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.State == StateRunning {
			return l.start(ctx, r.ID)
		}
	}
	return nil
}

func (l *leader) start(ctx context.Context, id string) error {
	run, _, err := l.store.Run(ctx, id)
	if err != nil {
		return err
	}
	run.Terms = l.withTerm(run.Terms)
	run.Leader = l.cfg.Node
	if _, err := l.store.saveRun(ctx, run, l.guard, 0); err != nil {
		return err
	}
	dctx, cancel := context.WithCancelCause(ctx)
	d := &drive{id: id, cancel: cancel, done: make(chan struct{})}
	l.active = d
	go func() {
		defer close(d.done)
		l.drive(dctx, run)
	}()
	return nil
}

// withTerm adds this term to the terms of a run's record, once.
func (l *leader) withTerm(terms []Term) []Term {
	if slices.ContainsFunc(terms, func(t Term) bool { return t.Key == l.guard.Key && t.Rev == l.guard.Rev }) {
		return terms
	}
	return append(terms, Term{Node: l.cfg.Node, Key: l.guard.Key, Rev: l.guard.Rev, Since: l.since})
}

// handleControl acts on one state of the control key.
func (l *leader) handleControl(ctx context.Context, ev controlEvent) error {
	if ev.Deleted || ev.Rev == 0 {
		return nil
	}
	runs, err := l.store.Runs(ctx)
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.ControlRev == ev.Rev {
			return nil // handled, in this term or an earlier one
		}
	}
	req, err := DecodeRequest(ev.Value)
	if err != nil {
		// Record the rejection under the operator's id when one can be
		// read at all, so `rokup status --id` finds it.
		var loose struct{ ID string }
		_ = json.Unmarshal(ev.Value, &loose)
		return l.reject(ctx, ev.Rev, loose.ID, err)
	}
	existing, _, err := l.store.Run(ctx, req.ID)
	if err != nil && !errors.Is(err, ErrNoRun) {
		return err
	}
	if req.Action == ActionAbort {
		return l.abort(ctx, ev.Rev, req.ID, existing)
	}
	if existing != nil && existing.State != StateRejected {
		return l.rewrite(ctx, ev.Rev, existing)
	}
	for _, r := range runs {
		if r.State == StateRunning {
			return l.reject(ctx, ev.Rev, req.ID, fmt.Errorf("run %q is running; abort it or wait for it to end", r.ID))
		}
	}
	nodes, err := l.nodesFor(ctx, req)
	if err != nil {
		return l.reject(ctx, ev.Rev, req.ID, err)
	}
	run, err := newRun(req, nodes, l.reg)
	if err != nil {
		return l.reject(ctx, ev.Rev, req.ID, err)
	}
	run.ControlRev = ev.Rev
	run.Created = time.Now().UTC()
	run.Leader = l.cfg.Node
	prev := int64(-1)
	if existing != nil { // a rejected request of the same id: replace it
		var old *Run
		old, prev, err = l.store.Run(ctx, req.ID)
		if err != nil {
			return err
		}
		// The record's key was written in those terms too: keep them, so
		// every write of it can be checked against its writer's term.
		run.Terms = old.Terms
	}
	if _, err := l.store.saveRun(ctx, run, l.guard, prev); err != nil {
		return err
	}
	l.lg.Info("run accepted", zap.String("run", run.ID), zap.String("action", run.Action), zap.Strings("nodes", nodes))
	return l.start(ctx, run.ID)
}

// nodesFor resolves the nodes of a request: every named node must have run
// a sidecar at some time (it may be down now: the run waits for it); none
// named means the live members.
func (l *leader) nodesFor(ctx context.Context, req Request) ([]string, error) {
	return ResolveNodes(ctx, l.cli, l.cfg.Keys, req)
}

// rewrite handles a control write of an id that has a record: a running or
// finished run is left as it is (idempotent), a failed or aborted one is
// resumed from its last finished step.
func (l *leader) rewrite(ctx context.Context, rev int64, run *Run) error {
	run.ControlRev = rev
	switch run.State {
	case StateFailed, StateAborted:
		run.State, run.Error, run.Finished = StateRunning, "", time.Time{}
		if run.Action == ActionUpgrade {
			// Check again what failed it (a node's roots, a fence) before
			// going on.
			run.Preflight = &Preflight{State: PreflightPending}
		}
		for i := range run.Steps {
			if st := &run.Steps[i]; st.State != StateDone {
				st.State, st.Error, st.Attempts = StatePending, "", 0
			}
		}
		for _, n := range run.Nodes {
			err := l.store.updateNode(ctx, run.ID, n, l.guard, func(ns *NodeSteps) *NodeSteps {
				if ns == nil {
					return nil
				}
				for i := range ns.Steps {
					if st := &ns.Steps[i]; st.State != StateDone {
						st.State, st.Error, st.Attempts = StatePending, "", 0
					}
				}
				return ns
			})
			if err != nil {
				return err
			}
		}
		if _, err := l.store.saveRun(ctx, run, l.guard, 0); err != nil {
			return err
		}
		l.lg.Info("run resumed by a control write", zap.String("run", run.ID))
		if l.active == nil {
			return l.start(ctx, run.ID)
		}
		return nil
	default:
		_, err := l.store.saveRun(ctx, run, l.guard, 0)
		return err
	}
}

func (l *leader) abort(ctx context.Context, rev int64, id string, run *Run) error {
	if run == nil {
		return l.reject(ctx, rev, "", fmt.Errorf("abort: no run %q", id))
	}
	if l.active != nil && l.active.id == id {
		// The drive stops after the hook's current batch and records the
		// abort itself; the control revision is recorded with it.
		l.active.cancel(errAborted)
		<-l.active.done
		l.active = nil
		run, _, err := l.store.Run(ctx, id)
		if err != nil {
			return err
		}
		run.ControlRev = rev
		_, err = l.store.saveRun(ctx, run, l.guard, 0)
		return err
	}
	run.ControlRev = rev
	if !Terminal(run.State) {
		markAborted(run)
	}
	_, err := l.store.saveRun(ctx, run, l.guard, 0)
	return err
}

func markAborted(run *Run) {
	run.State, run.Error, run.Finished = StateAborted, "aborted by the operator; the GC fence stays until released", time.Now().UTC()
	if !run.fenced() {
		run.Error = "aborted by the operator before the GC fence was set; the fence stays unset, nothing to release"
	}
	for i := range run.Steps {
		if st := &run.Steps[i]; !Terminal(st.State) && st.Placement == hooks.Leader {
			st.State = StateAborted
		}
	}
}

// reject records a control write that will not run. It goes to the
// request's own id when that is free (or held by an earlier rejection),
// otherwise to rejected-<rev>, so a bad write never clobbers a real run.
func (l *leader) reject(ctx context.Context, rev int64, id string, reason error) error {
	l.lg.Warn("control write rejected", zap.Int64("rev", rev), zap.String("id", id), zap.Error(reason))
	prev := int64(-1)
	var terms []Term
	if ValidName(id) {
		existing, r, err := l.store.Run(ctx, id)
		switch {
		case errors.Is(err, ErrNoRun):
		case err != nil:
			return err
		case existing.State == StateRejected:
			prev, terms = r, existing.Terms
		default:
			id = ""
		}
	} else {
		id = ""
	}
	if id == "" {
		id = fmt.Sprintf("rejected-%d", rev)
		prev, terms = 0, nil
	}
	terms = l.withTerm(terms)
	run := &Run{Request: Request{ID: id}, State: StateRejected, Error: reason.Error(), ControlRev: rev,
		Leader: l.cfg.Node, Created: time.Now().UTC(), Steps: []Step{}, Terms: terms}
	run.Finished = run.Created
	_, err := l.store.saveRun(ctx, run, l.guard, prev)
	return err
}

// drive runs a run's steps in order until it ends, is aborted, or the term
// ends. Every record write carries the term's guard.
func (l *leader) drive(ctx context.Context, run *Run) {
	groups := run.groups()
	placement := map[string]hooks.Placement{}
	for _, s := range run.Steps {
		placement[s.Name] = s.Placement
	}
	t := newTracker(l.Sidecar, run, l.guard)
	defer t.close()
	if run.Preflight != nil && run.Preflight.State != PreflightPassed {
		err := l.preflight(ctx, t)
		switch {
		case err == nil:
		case errors.Is(context.Cause(ctx), errAborted):
			t.update(func(r *Run) { markAborted(r) })
			t.flushHard(context.WithoutCancel(ctx))
			l.lg.Info("run aborted", zap.String("run", run.ID), zap.String("during", "preflight"))
			return
		default: // recorded by preflight, or leadership ended
			return
		}
	}
	for _, name := range groups {
		var err error
		if placement[name] == hooks.Leader {
			err = l.leaderStep(ctx, t, name)
		} else {
			err = l.nodeSteps(ctx, t, name)
		}
		if err == nil {
			continue
		}
		switch {
		case errors.Is(context.Cause(ctx), errAborted):
			t.update(func(r *Run) { markAborted(r) })
			t.flushHard(context.WithoutCancel(ctx))
			l.lg.Info("run aborted", zap.String("run", run.ID), zap.String("during", name))
		case ctx.Err() != nil || errors.Is(err, fencing.ErrNotLeader):
			l.lg.Warn("stopped driving: leadership ended", zap.String("run", run.ID), zap.Error(err))
		default:
			t.update(func(r *Run) {
				r.State, r.Error, r.Finished = StateFailed, fmt.Sprintf("step %s: %v", name, err), time.Now().UTC()
			})
			t.flushHard(ctx)
			l.lg.Error("run failed", zap.String("run", run.ID), zap.String("step", name), zap.Error(err))
		}
		return
	}
	t.update(func(r *Run) { r.State, r.Error, r.Finished = StateDone, "", time.Now().UTC() })
	t.flushHard(ctx)
	l.lg.Info("run done", zap.String("run", run.ID))
}

// leaderStep runs a leader-only hook here, retrying transient failures.
func (l *leader) leaderStep(ctx context.Context, t *tracker, name string) error {
	var st Step
	t.update(func(r *Run) { st = *r.step(name, "") })
	if st.State == StateDone {
		return nil
	}
	h, err := l.reg.Get(name)
	if err != nil {
		return err
	}
	for {
		t.update(func(r *Run) {
			s := r.step(name, "")
			s.Node, s.State, s.Error = l.cfg.Node, StateRunning, ""
			s.Attempts++
			s.AttemptStarted = time.Now().UTC()
			if s.Started.IsZero() {
				s.Started = time.Now().UTC()
			}
		})
		if err := t.flushHard(ctx); err != nil {
			return err
		}
		task := hooks.Task{RunID: t.run.ID, Node: l.cfg.Node, Args: st.Args, Guard: l.guard,
			Report: func(p hooks.Progress) { t.update(func(r *Run) { r.step(name, "").progress(p) }) }}
		l.lg.Info("step starting", zap.String("run", t.run.ID), zap.String("step", name))
		err := h.Run(ctx, task)
		if err == nil {
			t.update(func(r *Run) {
				s := r.step(name, "")
				s.State, s.Finished, s.Note = StateDone, time.Now().UTC(), ""
				if s.Total == 0 {
					s.Total = s.Done
				}
			})
			l.lg.Info("step done", zap.String("run", t.run.ID), zap.String("step", name))
			return t.flushHard(ctx)
		}
		if ctx.Err() != nil || errors.Is(err, fencing.ErrNotLeader) {
			return err
		}
		var attempts int
		t.update(func(r *Run) {
			s := r.step(name, "")
			attempts = s.Attempts
			s.Error = err.Error()
			if attempts >= l.cfg.Attempts || !transient(err) {
				s.State, s.Finished = StateFailed, time.Now().UTC()
			} else {
				s.Note = fmt.Sprintf("attempt %d failed, retrying: %v", attempts, err)
			}
		})
		if attempts >= l.cfg.Attempts || !transient(err) {
			return err
		}
		l.lg.Warn("step failed; retrying", zap.String("step", name), zap.Int("attempt", attempts), zap.Error(err))
		t.flushHard(ctx)
		backoff.Sleep(ctx, l.cfg.RetryBackoff*time.Duration(attempts))
	}
}

// nodeSteps hands a step to each of its nodes and waits until every node
// reports it done. A node without a live sidecar is waited for, visibly.
func (l *leader) nodeSteps(ctx context.Context, t *tracker, name string) error {
	var entries []Step
	t.update(func(r *Run) {
		for _, s := range r.Steps {
			if s.Name == name {
				entries = append(entries, s)
			}
		}
	})
	for _, e := range entries {
		e := e
		err := l.store.updateNode(ctx, t.run.ID, e.Node, l.guard, func(ns *NodeSteps) *NodeSteps {
			if ns == nil {
				ns = &NodeSteps{Run: t.run.ID, Node: e.Node}
			}
			if ns.step(name) != nil {
				return nil // handed over by an earlier term
			}
			e.State = StatePending
			ns.Steps = append(ns.Steps, e)
			return ns
		})
		if err != nil {
			return err
		}
	}
	prefix := l.cfg.Keys.Run(t.run.ID) + "/nodes/"
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := l.cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix())
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		done, err := l.collect(ctx, t, name)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-wch:
			if !ok {
				wch = l.cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix())
			}
		case <-tick.C:
		}
	}
}

// collect folds the nodes' state of step name into the run; done when all
// are done, an error when one failed.
func (l *leader) collect(ctx context.Context, t *tracker, name string) (bool, error) {
	view, err := l.store.View(ctx, t.run.ID)
	if err != nil {
		return false, err
	}
	live, err := LiveMembers(ctx, l.cli, l.cfg.Keys)
	if err != nil {
		return false, err
	}
	all, failed := true, ""
	t.update(func(r *Run) {
		for i := range r.Steps {
			s := &r.Steps[i]
			if s.Name != name {
				continue
			}
			if v := view.step(name, s.Node); v != nil {
				*s = *v
			}
			if s.State != StateDone {
				all = false
			}
			if s.State == StateFailed && failed == "" {
				failed = fmt.Sprintf("on %s: %s", s.Node, s.Error)
			}
			if !Terminal(s.State) && !slices.Contains(live, s.Node) {
				s.Note = fmt.Sprintf("waiting for node %s: no sidecar is running there", s.Node)
			}
		}
	})
	if failed != "" {
		return false, errors.New(failed)
	}
	return all, nil
}

// tracker owns the in-memory run record of a drive and persists it:
// throttled while progress streams in, at once on state changes.
type tracker struct {
	s     *Sidecar
	guard fencing.Guard

	mu    sync.Mutex
	run   *Run
	dirty bool
	// saving orders the writes: a slow periodic save of an older snapshot
	// must never land after a newer one (it would undo an abort).
	saving sync.Mutex

	stop chan struct{}
	wg   sync.WaitGroup
}

func newTracker(s *Sidecar, run *Run, g fencing.Guard) *tracker {
	t := &tracker{s: s, guard: g, run: run, stop: make(chan struct{})}
	t.wg.Add(1)
	go t.loop()
	return t
}

func (t *tracker) update(fn func(*Run)) {
	t.mu.Lock()
	fn(t.run)
	t.dirty = true
	t.mu.Unlock()
}

func (t *tracker) loop() {
	defer t.wg.Done()
	tick := time.NewTicker(t.s.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := t.flush(ctx); err != nil {
				t.s.lg.Debug("persist progress", zap.Error(err))
			}
			cancel()
		}
	}
}

func (t *tracker) flush(ctx context.Context) error {
	t.saving.Lock()
	defer t.saving.Unlock()
	t.mu.Lock()
	if !t.dirty {
		t.mu.Unlock()
		return nil
	}
	snapshot := *t.run
	snapshot.Steps = slices.Clone(t.run.Steps)
	t.dirty = false
	t.mu.Unlock()
	for _, st := range snapshot.Steps {
		t.s.cfg.Observer.StepProgress(snapshot.ID, st)
	}
	if _, err := t.s.store.saveRun(ctx, &snapshot, t.guard, 0); err != nil {
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
		return err
	}
	return nil
}

// flushHard persists now, retrying while etcd is unavailable, so a state
// change is never lost; it gives up when the term ends.
func (t *tracker) flushHard(ctx context.Context) error {
	t.mu.Lock()
	t.dirty = true
	t.mu.Unlock()
	var retry backoff.Backoff
	for {
		err := t.flush(ctx)
		if err == nil || errors.Is(err, fencing.ErrNotLeader) || ctx.Err() != nil {
			return err
		}
		t.s.lg.Warn("persist run state; retrying", zap.Error(err))
		retry.Wait(ctx)
	}
}

func (t *tracker) close() {
	close(t.stop)
	t.wg.Wait()
}
