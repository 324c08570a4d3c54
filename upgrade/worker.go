package upgrade

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/internal/backoff"
)

// work runs the steps the leader hands to this node, one at a time, until
// ctx ends. It follows the runs prefix: a step that is pending or was left
// running (this node crashed) is run; a step of a run that is no longer
// running (aborted, failed) is cancelled after its current batch.
func (s *Sidecar) work(ctx context.Context) {
	var (
		cur    *nodeJob
		doneCh = make(chan *nodeJob, 1)
	)
	defer func() {
		if cur != nil {
			cur.cancel()
			<-doneCh
		}
	}()
	var retry backoff.Backoff
	for ctx.Err() == nil {
		resp, err := s.cli.Get(ctx, s.cfg.Keys.Runs(), clientv3.WithPrefix())
		if err != nil {
			s.lg.Warn("worker: read runs", zap.Error(err))
			retry.Wait(ctx)
			continue
		}
		retry.Reset()
		runs, nodes := s.store.decode(resp)
		for id, r := range runs {
			s.cfg.Observer.RunState(id, r.State)
		}
		if cur != nil {
			if r, ok := runs[cur.run]; !ok || r.State != StateRunning {
				cur.cancel()
			}
		}
		if cur == nil {
			if job := s.nextJob(runs, nodes); job != nil {
				job.ctx, job.cancel = context.WithCancel(ctx)
				cur = job
				go func() { s.runJob(ctx, job); doneCh <- job }()
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		wch := s.cli.Watch(clientv3.WithRequireLeader(wctx), s.cfg.Keys.Runs(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		select {
		case <-ctx.Done():
		case <-wch:
		case <-doneCh:
			cur = nil
		case <-time.After(5 * time.Second):
		}
		cancel()
	}
}

type nodeJob struct {
	run, step string
	args      []byte
	ctx       context.Context
	cancel    context.CancelFunc
}

func (s *Sidecar) nextJob(runs map[string]*Run, nodes map[string][]NodeSteps) *nodeJob {
	for id, r := range runs {
		if r.State != StateRunning {
			continue
		}
		for _, ns := range nodes[id] {
			if ns.Node != s.cfg.Node {
				continue
			}
			for _, st := range ns.Steps {
				if st.State == StatePending || st.State == StateRunning {
					return &nodeJob{run: id, step: st.Name, args: st.Args}
				}
			}
		}
	}
	return nil
}

// runJob runs one node step with retries, persisting its state and
// progress in the node's key.
func (s *Sidecar) runJob(parent context.Context, job *nodeJob) {
	defer job.cancel()
	ctx := job.ctx
	h, err := s.reg.Get(job.step)
	if err != nil {
		s.finishJob(parent, job, StateFailed, err)
		return
	}
	var (
		mu    sync.Mutex
		prog  hooks.Progress
		dirty bool
	)
	flush := func(c context.Context) {
		mu.Lock()
		p, d := prog, dirty
		dirty = false
		mu.Unlock()
		if !d {
			return
		}
		_ = s.store.updateNode(c, job.run, s.cfg.Node, fencing.Guard{}, func(ns *NodeSteps) *NodeSteps {
			if ns == nil {
				return nil
			}
			st := ns.step(job.step)
			if st == nil || st.State != StateRunning {
				return nil
			}
			st.progress(p)
			s.cfg.Observer.StepProgress(job.run, *st)
			return ns
		})
	}
	for attempt := 1; ; attempt++ {
		err := s.updateJob(ctx, job, func(st *Step) {
			st.State, st.Error, st.Node = StateRunning, "", s.cfg.Node
			st.Attempts++
			st.AttemptStarted = time.Now().UTC()
			if st.Started.IsZero() {
				st.Started = time.Now().UTC()
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				s.lg.Warn("worker: mark step running", zap.Error(err))
			}
			return // the main loop retries the job
		}
		stop, ticking := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(ticking)
			t := time.NewTicker(s.cfg.FlushInterval)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					flush(ctx)
				}
			}
		}()
		s.lg.Info("node step starting", zap.String("run", job.run), zap.String("step", job.step), zap.Int("attempt", attempt))
		err = h.Run(ctx, hooks.Task{RunID: job.run, Node: s.cfg.Node, Args: job.args,
			Report: func(p hooks.Progress) { mu.Lock(); prog, dirty = p, true; mu.Unlock() }})
		close(stop)
		// A tick's flush may still be writing an older progress: it
		// must land before the last one, not after it and undo it.
		<-ticking
		flush(context.WithoutCancel(ctx))
		switch {
		case err == nil:
			s.finishJob(parent, job, StateDone, nil)
			return
		case parent.Err() != nil:
			// The sidecar is stopping: the step stays "running" and is
			// resumed when the sidecar comes back.
			return
		case ctx.Err() != nil:
			s.finishJob(parent, job, StateAborted, errors.New("the run stopped"))
			return
		case attempt >= s.cfg.Attempts || !transient(err):
			s.finishJob(parent, job, StateFailed, err)
			return
		}
		s.lg.Warn("node step failed; retrying", zap.String("step", job.step), zap.Int("attempt", attempt), zap.Error(err))
		_ = s.updateJob(ctx, job, func(st *Step) {
			st.Note = fmt.Sprintf("attempt %d failed, retrying: %v", attempt, err)
		})
		backoff.Sleep(ctx, s.cfg.RetryBackoff*time.Duration(attempt))
	}
}

func (s *Sidecar) updateJob(ctx context.Context, job *nodeJob, fn func(*Step)) error {
	return s.store.updateNode(ctx, job.run, s.cfg.Node, fencing.Guard{}, func(ns *NodeSteps) *NodeSteps {
		if ns == nil || ns.step(job.step) == nil {
			return nil
		}
		fn(ns.step(job.step))
		return ns
	})
}

// finishJob records a step's end, retrying while etcd is unavailable: a
// node must never leave a half-written state behind.
func (s *Sidecar) finishJob(ctx context.Context, job *nodeJob, state string, cause error) {
	var retry backoff.Backoff
	for ctx.Err() == nil {
		err := s.updateJob(ctx, job, func(st *Step) {
			st.State, st.Finished, st.Note = state, time.Now().UTC(), ""
			if cause != nil {
				st.Error = cause.Error()
			}
			if state == StateDone && st.Total == 0 {
				st.Total = st.Done
			}
		})
		if err == nil {
			s.lg.Info("node step ended", zap.String("run", job.run), zap.String("step", job.step), zap.String("state", state), zap.Error(cause))
			return
		}
		s.lg.Warn("record step end; retrying", zap.Error(err))
		retry.Wait(ctx)
	}
}
