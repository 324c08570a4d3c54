package gateway

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/fencing"
)

// ToolVersion is written in every ledger entry; set it with -ldflags.
var ToolVersion = "rokup 0.1.0-dev"

// Env is what a migration works on.
type Env struct {
	V3     *clientv3.Client
	V2     clientv2.KeysAPI
	Prefix string
	// Guard goes in the If of every write (the sidecar's leader term).
	Guard fencing.Guard
	// Move tunes the v2 → v3 move (limits, --force, --overwrite).
	Move MoveOptions
	// Applied is the ledger as read when the plan was made.
	Applied map[Key]Source
	// Progress receives the running step's progress; never nil inside a
	// migration.
	Progress func(Progress)
}

// Progress is the account of a running step.
type Progress struct {
	Step  Key    `json:"step"`
	Phase string `json:"phase"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`           // 0 while unknown
	Bytes int64  `json:"bytes,omitempty"` // value bytes so far, where the phase counts them
}

// Step is one migration of a plan, forward or backward.
type Step struct {
	Key      Key  `json:"migration"`
	Backward bool `json:"backward,omitempty"`
}

func (s Step) String() string {
	if s.Backward {
		return "Unapply " + s.Key.String()
	}
	return "Apply " + s.Key.String()
}

// StepResult is what one step did.
type StepResult struct {
	Step
	Result  Result        `json:"result"`
	Fake    bool          `json:"fake,omitempty"`
	DryRun  bool          `json:"dry_run,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Executor applies and reverts plans. It knows nothing of command lines:
// it takes an environment and reports progress through a callback.
type Executor struct {
	Loader   *Loader
	Graph    *Graph
	Recorder *Recorder
	Env      Env
	// OnProgress, if set, receives every step's progress.
	OnProgress func(Progress)
}

// NewExecutor checks reg's graph and returns an executor on env whose
// ledger is read and written through env's clients.
func NewExecutor(reg *Loader, env Env) (*Executor, error) {
	if env.Prefix != "" && !strings.HasPrefix(env.Prefix, "/") {
		return nil, fmt.Errorf("gateway: prefix %q must start with / (v2 keys are absolute paths)", env.Prefix)
	}
	g, err := NewGraph(reg)
	if err != nil {
		return nil, err
	}
	env.Prefix = cleanPrefix(env.Prefix)
	env.Move.Prefix = env.Prefix
	env.Move.Guard = env.Guard
	return &Executor{Loader: reg, Graph: g, Recorder: NewRecorder(env.V3, env.V2, env.Prefix, env.Guard), Env: env}, nil
}

// Applied reads the ledger, and marks Partial the migrations whose
// interrupted run left the store between applied and unapplied.
func (e *Executor) Applied(ctx context.Context) (map[Key]Source, error) {
	applied, err := e.Recorder.Applied(ctx, e.Graph.Order())
	if err != nil {
		return nil, err
	}
	for _, k := range e.Graph.Order() {
		m, _ := e.Loader.Get(k)
		if m.Pending == nil {
			continue
		}
		env := e.Env
		env.Applied = applied
		pending, err := m.Pending(ctx, &env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		if pending {
			applied[k] = Partial
		}
	}
	return applied, nil
}

// isApplied reports whether applied holds k as done (not Partial).
func isApplied(applied map[Key]Source, k Key) bool {
	src, ok := applied[k]
	return ok && src != Partial
}

// Plan resolves a migrate request as Django does: no app means every app
// to its leaves; an app alone means that app to its leaves; a target that
// is applied means reverting what depends on it; "zero" reverts the app
// entirely; an unapplied target means applying it and its dependencies.
func (e *Executor) Plan(app, target string, applied map[Key]Source) ([]Step, error) {
	var targets []Key
	switch {
	case app == "":
		for _, a := range e.Loader.Apps() {
			targets = append(targets, e.Graph.Leaves(a)...)
		}
	case target == "":
		if _, err := e.Loader.App(app); err != nil {
			return nil, err
		}
		targets = e.Graph.Leaves(app)
	case target == "zero":
		ms, err := e.Loader.App(app)
		if err != nil {
			return nil, err
		}
		var roots []Key
		for _, m := range ms {
			roots = append(roots, m.Key())
		}
		return e.backward(append(roots, e.Graph.Descendants(roots...)...), applied)
	default:
		m, err := e.Loader.Get(Key{app, target})
		if err != nil {
			return nil, err
		}
		if isApplied(applied, m.Key()) {
			// Revert the target's dependents within its app, and what
			// depends on those anywhere.
			var roots []Key
			for _, c := range e.Graph.Descendants(m.Key()) {
				if c.App == app {
					roots = append(roots, c)
				}
			}
			return e.backward(append(roots, e.Graph.Descendants(roots...)...), applied)
		}
		targets = []Key{m.Key()}
	}
	var plan []Step
	for _, k := range e.Graph.Ancestors(targets...) {
		if !isApplied(applied, k) {
			plan = append(plan, Step{Key: k})
		}
	}
	return plan, nil
}

func (e *Executor) backward(keys []Key, applied map[Key]Source) ([]Step, error) {
	want := map[Key]bool{}
	for _, k := range keys {
		want[k] = true
	}
	order := e.Graph.Order()
	var plan []Step
	for i := len(order) - 1; i >= 0; i-- {
		k := order[i]
		src, ok := applied[k]
		if !want[k] || !ok {
			continue
		}
		m, _ := e.Loader.Get(k)
		if m.Backward == nil {
			return nil, fmt.Errorf("%w %s: it has no backward step", ErrIrreversible, k)
		}
		if src == InV2 {
			return nil, fmt.Errorf("%w %s: it is recorded in the v2 ledger, which rokup never modifies", ErrIrreversible, k)
		}
		plan = append(plan, Step{Key: k, Backward: true})
	}
	return plan, nil
}

// RunOptions change how Run treats a plan.
type RunOptions struct {
	// Fake records (or unrecords) each step without running it.
	Fake bool
	// DryRun runs each step's dry run and writes nothing.
	DryRun bool
}

// Run executes plan in order, recording each step as soon as it is done,
// and stops at the first error: the failed step stays unrecorded, the
// steps before it stay recorded. Cancelling ctx stops the running step
// after its current batch; Run then returns the context's error.
func (e *Executor) Run(ctx context.Context, plan []Step, opts RunOptions) ([]StepResult, error) {
	applied, err := e.Applied(ctx)
	if err != nil {
		return nil, err
	}
	var results []StepResult
	for _, st := range plan {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		m, err := e.Loader.Get(st.Key)
		if err != nil {
			return results, err
		}
		env := e.Env
		env.Applied = applied
		env.Progress = func(p Progress) {
			p.Step = st.Key
			if e.OnProgress != nil {
				e.OnProgress(p)
			}
		}
		env.Move.Progress = env.Progress
		start := time.Now()
		res := StepResult{Step: st, Fake: opts.Fake, DryRun: opts.DryRun}
		switch {
		case opts.DryRun:
			if !st.Backward && m.DryRun != nil {
				res.Result, err = m.DryRun(ctx, &env)
			}
		case opts.Fake:
		case st.Backward:
			res.Result, err = m.Backward(ctx, &env)
		default:
			res.Result, err = m.Forward(ctx, &env)
		}
		res.Elapsed = time.Since(start)
		if err != nil {
			return append(results, res), fmt.Errorf("%s: %w", st, err)
		}
		if !opts.DryRun {
			if st.Backward {
				err = e.Recorder.Unrecord(ctx, st.Key)
				delete(applied, st.Key)
			} else {
				err = e.Recorder.Record(ctx, st.Key, Record{
					Applied: time.Now().UTC(), ToolVersion: ToolVersion,
					Counts: res.Result.Counts, Checksum: res.Result.Checksum, Fake: opts.Fake,
				})
				applied[st.Key] = InV3
			}
			if err != nil {
				return append(results, res), err
			}
		}
		results = append(results, res)
	}
	return results, nil
}
