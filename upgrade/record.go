package upgrade

import (
	"encoding/json"
	"time"

	"github.com/rokup/rokup/hooks"
)

// Run and step states (docs/design.md#run-record).
const (
	StatePending  = "pending"
	StateRunning  = "running"
	StateDone     = "done"
	StateFailed   = "failed"
	StateAborted  = "aborted"
	StateRejected = "rejected"
)

// Terminal reports whether a run or step in state s will not change again
// without an operator.
func Terminal(s string) bool {
	return s == StateDone || s == StateFailed || s == StateAborted || s == StateRejected
}

// Run is the record /rok/upgrade/runs/<id>, the JSON scripts rely on. It
// starts with the request it answers, its Nodes resolved (none named means
// the live members).
type Run struct {
	Request
	State  string `json:"state"`
	Error  string `json:"error"`
	Leader string `json:"leader"`
	Steps  []Step `json:"steps"`
	// Preflight is what the master checked before the run's first write
	// (absent for a task, and for a run recorded by an older rokup).
	Preflight *Preflight `json:"preflight,omitempty"`
	// Terms lists every leadership term that drove the run, so anyone can
	// check that each leader-only write landed inside its writer's term.
	Terms []Term `json:"terms,omitempty"`
	// ControlRev is the mod revision of the control write this record
	// answers; a control value with the same revision was already handled.
	ControlRev int64     `json:"control_rev"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	Finished   time.Time `json:"finished,omitzero"`
}

// Term is one leadership term: who, and the election key's create revision.
type Term struct {
	Node  string    `json:"node"`
	Key   string    `json:"key"`
	Rev   int64     `json:"rev"`
	Since time.Time `json:"since"`
}

// Step is one step on one node. A leader step has one entry, whose node is
// the leader that ran it; an every-node step has one entry per node.
type Step struct {
	Name      string          `json:"name"`
	Node      string          `json:"node"`
	Placement hooks.Placement `json:"placement"`
	State     string          `json:"state"`
	Done      int64           `json:"done"`
	Total     int64           `json:"total"`
	Errors    int64           `json:"errors"`
	Skipped   int64           `json:"skipped,omitempty"` // left alone on purpose (bad entries)
	PerSecond float64         `json:"per_s"`
	Note      string          `json:"note,omitempty"`
	Error     string          `json:"error,omitempty"`
	Attempts  int             `json:"attempts,omitempty"`
	Args      json.RawMessage `json:"args,omitempty"`
	Started   time.Time       `json:"started,omitzero"`
	// AttemptStarted is when the current (last) attempt began: rates are
	// reckoned from it, not from a failed attempt long before.
	AttemptStarted time.Time `json:"attempt_started,omitzero"`
	Finished       time.Time `json:"finished,omitzero"`
}

// NodeSteps is the key …/runs/<id>/nodes/<node>: the steps the leader
// handed to one node, updated by that node's sidecar as it works.
type NodeSteps struct {
	Run   string `json:"run"`
	Node  string `json:"node"`
	Steps []Step `json:"steps"`
}

func (ns *NodeSteps) step(name string) *Step {
	for i := range ns.Steps {
		if ns.Steps[i].Name == name {
			return &ns.Steps[i]
		}
	}
	return nil
}

// step finds the entry of step name on node ("" matches a leader step's
// entry whatever its node).
func (r *Run) step(name, node string) *Step {
	for i := range r.Steps {
		s := &r.Steps[i]
		if s.Name == name && (s.Node == node || (node == "" && s.Placement == hooks.Leader)) {
			return s
		}
	}
	return nil
}

// groups returns the step names in plan order, each once.
func (r *Run) groups() []string {
	var names []string
	seen := map[string]bool{}
	for _, s := range r.Steps {
		if !seen[s.Name] {
			seen[s.Name] = true
			names = append(names, s.Name)
		}
	}
	return names
}

// Merge folds the fresher per-node state into the run's step entries, the
// view `rokup status` shows.
func (r *Run) Merge(nodes []NodeSteps) {
	for _, ns := range nodes {
		for _, s := range ns.Steps {
			if e := r.step(s.Name, ns.Node); e != nil && e.Placement != hooks.Leader {
				*e = s
			}
		}
	}
}

func (s *Step) progress(p hooks.Progress) {
	s.Done, s.Errors, s.Skipped, s.Note = p.Done, p.Errors, p.Skipped, p.Note
	if p.Total > 0 {
		s.Total = p.Total
	}
	from := s.AttemptStarted
	if from.IsZero() {
		from = s.Started
	}
	if !from.IsZero() {
		if el := time.Since(from).Seconds(); el > 0 {
			s.PerSecond = float64(s.Done) / el
		}
	}
}

// fenced reports whether the run has set (or was setting) the GC fence.
func (r *Run) fenced() bool {
	for _, s := range r.Steps {
		if s.Name == StepFence && (s.State != StatePending || s.Attempts > 0) {
			return true
		}
	}
	return false
}
