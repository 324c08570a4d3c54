package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/internal/backoff"
)

// The preflight is what the master checks before it writes anything for a
// run (before gc-precollect and gc-fence): every named node is up and can
// run its steps, the master can run its own, no Gateway is running, v3
// holds no key under the Gateway's prefix that v2 does not (the move would
// fail on it), no other fence or run is in the way, and etcd serves the
// v2 API. A run that cannot succeed is rejected instead of being fenced
// and then failing; a run that only needs a node to come up waits, saying
// so.

// Preflight states of a run.
const (
	PreflightPending = "pending"
	PreflightWaiting = "waiting"
	PreflightPassed  = "passed"
	PreflightFailed  = "failed"
)

// Preflight is the run record's account of its preflight.
type Preflight struct {
	State    string    `json:"state"`
	Problems []Problem `json:"problems,omitempty"`
	Checked  time.Time `json:"checked,omitzero"`
}

// Problem is one reason a run cannot go ahead now.
type Problem struct {
	Check  string `json:"check"` // nodes, storage, runs, fence, gateway, etcd
	Node   string `json:"node,omitempty"`
	Detail string `json:"detail"`
	// Wait means waiting can fix it (a node whose sidecar is not up): the
	// run waits, visibly, instead of being rejected.
	Wait bool `json:"wait,omitempty"`
}

func (p Problem) String() string {
	if p.Node != "" && !strings.Contains(p.Detail, p.Node) {
		return fmt.Sprintf("%s: node %s: %s", p.Check, p.Node, p.Detail)
	}
	return p.Check + ": " + p.Detail
}

// Check is one cluster-wide check the sidecar supplies (those that need
// more than the v3 client). It matters only while step Before is not done:
// a Gateway may run again once the move is done.
type Check struct {
	Name   string
	Before string
	Run    func(ctx context.Context) []Problem
}

// ErrPreflight wraps the reasons a run was refused by its preflight.
var ErrPreflight = errors.New("preflight")

// CheckRun is the preflight of req on nodes with leader as master: the
// same checks the master makes and `rokup start --dry-run` prints. done
// names the steps the run has finished (a resumed run), whose checks are
// moot. Problems are what was found; err is a failure to look.
func CheckRun(ctx context.Context, cli *clientv3.Client, keys Keys, req Request, nodes []string, leader string, done []string, checks []Check) ([]Problem, error) {
	var ps []Problem
	runs, err := NewStore(cli, keys).Runs(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if r.ID != req.ID && r.State == StateRunning {
			ps = append(ps, Problem{Check: "runs", Detail: fmt.Sprintf("run %q is running; abort it (rokup abort --id %s) or wait for it to end", r.ID, r.ID)})
		}
	}
	if !slices.Contains(done, StepFence) {
		h, err := fencing.NewFence(cli).Get(ctx)
		if err != nil {
			return nil, err
		}
		if h != nil && h.Holder != FenceHolder(req.ID) {
			ps = append(ps, Problem{Check: "fence", Detail: fenceAdvice(*h, runs)})
		}
	}
	live, known, err := Members(ctx, cli, keys)
	if err != nil {
		return nil, err
	}
	nodeSteps, leaderSteps := storageNeeds(req)
	for _, n := range nodes {
		info, up := live[n]
		if !up {
			info = known[n]
			ps = append(ps, Problem{Check: "nodes", Node: n, Wait: true, Detail: fmt.Sprintf("waiting for node %s: no sidecar is running there", n)})
		}
		for _, step := range nodeSteps {
			if slices.Contains(done, step) || info.Ready == nil {
				continue
			}
			if why := info.Ready.Cannot(step); why != "" {
				// A node that is down may come back with its roots fixed.
				ps = append(ps, Problem{Check: "storage", Node: n, Wait: !up, Detail: fmt.Sprintf("node %s cannot run %s: %s", n, step, why)})
			}
		}
	}
	if leader == "" {
		ps = append(ps, Problem{Check: "nodes", Wait: true, Detail: "no master is elected (no sidecar is running?)"})
	} else if info, up := live[leader]; up && info.Ready != nil {
		for _, step := range leaderSteps {
			if slices.Contains(done, step) {
				continue
			}
			if why := info.Ready.Cannot(step); why != "" {
				ps = append(ps, Problem{Check: "storage", Node: leader, Detail: fmt.Sprintf("the master %s cannot run %s: %s (start its sidecar with the root, or stop it so that another node leads)", leader, step, why)})
			}
		}
	}
	for _, c := range checks {
		if c.Before != "" && slices.Contains(done, c.Before) {
			continue
		}
		ps = append(ps, c.Run(ctx)...)
	}
	return ps, nil
}

// FenceHolder is the holder of the fence a run sets (gc-fence's default).
func FenceHolder(id string) string { return "upgrade/" + id }

func fenceAdvice(h fencing.Holding, runs []*Run) string {
	s := "GC is fenced, " + h.String()
	for _, r := range runs {
		if FenceHolder(r.ID) == h.Holder {
			return s + fmt.Sprintf(": run %q (%s) left it; resume that run (rokup start --id %s), or release the fence (rokup fence release --holder %s) if you give it up", r.ID, r.State, r.ID, h.Holder)
		}
	}
	return s + fmt.Sprintf(": release it first if nothing needs it (rokup fence release --holder %s)", h.Holder)
}

// storageNeeds are the storage steps of a request: those every node runs,
// and those the master runs.
func storageNeeds(req Request) (nodeSteps, leaderSteps []string) {
	if req.Action != ActionUpgrade {
		return nil, nil
	}
	if req.Precollect {
		nodeSteps = append(nodeSteps, StepPrecollect)
		leaderSteps = append(leaderSteps, StepPrecollectCA)
	}
	if req.Mode == ModeLocal {
		nodeSteps = append(nodeSteps, StepAll)
	} else {
		nodeSteps = append(nodeSteps, StepNodelocal)
		leaderSteps = append(leaderSteps, StepCA)
	}
	return nodeSteps, leaderSteps
}

// Members reads the member records: the live sidecars and every node that
// ever ran one, with what each published last.
func Members(ctx context.Context, cli *clientv3.Client, keys Keys) (live, known map[string]MemberInfo, err error) {
	read := func(prefix string) (map[string]MemberInfo, error) {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		out := map[string]MemberInfo{}
		for _, kv := range resp.Kvs {
			var info MemberInfo
			_ = json.Unmarshal(kv.Value, &info) // an unreadable record still names a node
			out[string(kv.Key)[len(prefix):]] = info
		}
		return out, nil
	}
	if live, err = read(keys.Members()); err != nil {
		return nil, nil, err
	}
	if known, err = read(keys.Known()); err != nil {
		return nil, nil, err
	}
	return live, known, nil
}

// CurrentLeader is the node of the elected master, or "".
func CurrentLeader(ctx context.Context, cli *clientv3.Client, keys Keys) (string, error) {
	resp, err := cli.Get(ctx, keys.Election(), clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("read the election: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// ResolveNodes is the nodes a request runs on, as the master resolves them:
// the named ones, each of which must have run a sidecar at some time, or
// the live members.
func ResolveNodes(ctx context.Context, cli *clientv3.Client, keys Keys, req Request) ([]string, error) {
	if len(req.Nodes) > 0 {
		known, err := KnownNodes(ctx, cli, keys)
		if err != nil {
			return nil, err
		}
		for _, n := range req.Nodes {
			if !slices.Contains(known, n) {
				return nil, fmt.Errorf("unknown node %q: no sidecar has ever run there (known: %v)", n, known)
			}
		}
		return req.Nodes, nil
	}
	live, err := LiveMembers(ctx, cli, keys)
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		return nil, errors.New("no live sidecars")
	}
	if req.Action == ActionUpgrade && req.Mode == ModeLocal && len(live) != 1 {
		return nil, fmt.Errorf("local mode runs on one node and %d sidecars are live %v: name the node", len(live), live)
	}
	return live, nil
}

// DoneSteps lists the steps done everywhere.
func (r *Run) DoneSteps() []string {
	var out []string
	for _, name := range r.groups() {
		all := true
		for _, s := range r.Steps {
			if s.Name == name && s.State != StateDone {
				all = false
			}
		}
		if all {
			out = append(out, name)
		}
	}
	return out
}

// started reports whether any step has begun (written anything).
func (r *Run) started() bool {
	for _, s := range r.Steps {
		if s.State != StatePending || s.Attempts > 0 {
			return true
		}
	}
	return false
}

// preflight checks the run before its first write, and again when an
// operator resumes it. Problems waiting can fix are shown on the run and
// re-checked; any other rejects the run (or fails it, when a resumed run
// has written already). It returns nil when the run may go ahead.
func (l *leader) preflight(ctx context.Context, t *tracker) error {
	var run *Run
	t.update(func(r *Run) { c := *r; c.Steps = slices.Clone(r.Steps); run = &c })
	req, done := run.Request, run.DoneSteps()
	for {
		ps, err := CheckRun(ctx, l.cli, l.cfg.Keys, req, run.Nodes, l.cfg.Node, done, l.cfg.Checks)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l.lg.Warn("preflight: look", zap.Error(err))
			backoff.Sleep(ctx, l.cfg.RetryBackoff)
			continue
		}
		var hard, wait []string
		waitNote := map[string]string{}
		for _, p := range ps {
			if p.Wait {
				wait = append(wait, p.String())
				if p.Node != "" && waitNote[p.Node] == "" {
					waitNote[p.Node] = p.Detail + " (preflight: nothing written yet)"
				}
			} else {
				hard = append(hard, p.String())
			}
		}
		now := time.Now().UTC()
		switch {
		case len(hard) > 0:
			reason := fmt.Sprintf("%s: %s", ErrPreflight, strings.Join(hard, "; "))
			t.update(func(r *Run) {
				r.Preflight = &Preflight{State: PreflightFailed, Problems: ps, Checked: now}
				r.State, r.Error, r.Finished = StateFailed, reason, now
				if !r.started() {
					r.State = StateRejected
				}
				clearNotes(r)
			})
			l.lg.Warn("run refused by its preflight", zap.String("run", run.ID), zap.Strings("problems", hard))
			if err := t.flushHard(ctx); err != nil {
				return err
			}
			return fmt.Errorf("%w: %s", ErrPreflight, strings.Join(hard, "; "))
		case len(wait) > 0:
			t.update(func(r *Run) {
				r.Preflight = &Preflight{State: PreflightWaiting, Problems: ps, Checked: now}
				for i := range r.Steps {
					s := &r.Steps[i]
					if note, ok := waitNote[s.Node]; ok && s.State == StatePending {
						s.Note = note
					}
				}
			})
			if err := t.flushHard(ctx); err != nil {
				return err
			}
			l.lg.Info("preflight: waiting", zap.String("run", run.ID), zap.Strings("for", wait))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Second):
			}
		default:
			t.update(func(r *Run) {
				r.Preflight = &Preflight{State: PreflightPassed, Checked: now}
				clearNotes(r)
			})
			l.lg.Info("preflight passed", zap.String("run", run.ID))
			return t.flushHard(ctx)
		}
	}
}

func clearNotes(r *Run) {
	for i := range r.Steps {
		if s := &r.Steps[i]; s.State == StatePending {
			s.Note = ""
		}
	}
}
