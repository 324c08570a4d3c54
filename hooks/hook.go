package hooks

import (
	"context"
	"encoding/json"

	"github.com/rokup/rokup/fencing"
)

// Placement says which sidecars run a hook.
type Placement string

const (
	// Leader hooks run on the elected master only, and every write they
	// make carries the task's leader guard.
	Leader Placement = "leader"
	// EveryNode hooks run once on each node named by the run.
	EveryNode Placement = "every-node"
	// OneNode hooks run on exactly one node (local mode's epochs-all).
	OneNode Placement = "one-node"
)

// Progress is a hook's account of its work so far.
type Progress struct {
	Done   int64 `json:"done"`
	Total  int64 `json:"total"`  // 0 while unknown
	Errors int64 `json:"errors"` // items that failed
	// Skipped counts items left alone on purpose (bad entries a stamp
	// never touches): worth a look, not an alert.
	Skipped int64  `json:"skipped,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Reporter receives progress. Hooks call it as often as they like; the
// sidecar throttles what it persists.
type Reporter func(Progress)

// Task is one execution of a hook.
type Task struct {
	RunID string
	Node  string          // the node this task runs on
	Args  json.RawMessage // hook-specific arguments; may be empty
	// Guard is the leadership term for Leader hooks: every write must
	// include Guard.Cmps(), and a failed write must be told apart with
	// Guard.Check (fencing.ErrNotLeader). Zero for other placements.
	Guard fencing.Guard
	// Report may be nil; use task.Progress.
	Report Reporter
}

// Progress reports p if the task has a reporter.
func (t Task) Progress(p Progress) {
	if t.Report != nil {
		t.Report(p)
	}
}

// Hook is one step of the upgrade, or any task an operator can run by name.
// Run must be idempotent: after a crash or a change of leader it runs again
// from the start and must converge to the same result.
type Hook interface {
	Name() string
	Placement() Placement
	Run(ctx context.Context, task Task) error
}
