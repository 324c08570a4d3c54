package upgrade

import (
	"encoding/json"
	"fmt"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
)

// Step names of the 0.14 plan, each a hook (docs/design.md#plan). Each name is
// defined once, by the package whose hook it is.
const (
	StepPrecollect   = gc.PrecollectHook
	StepPrecollectCA = gc.PrecollectCAHook
	StepFence        = gc.FenceHook
	StepMigrate      = gateway.HookName
	StepNodelocal    = composer.HookNodelocal
	StepCA           = composer.HookCA
	StepAll          = composer.HookAll
	StepCleanup      = libmap.HookV2Cleanup
	StepUnfence      = gc.UnfenceHook
)

type stepSpec struct {
	name string
	args json.RawMessage
}

// planSteps is the ordered plan of an upgrade request.
func planSteps(req Request) []stepSpec {
	var steps []stepSpec
	add := func(name string, args json.RawMessage) { steps = append(steps, stepSpec{name, args}) }
	if req.Precollect {
		add(StepPrecollect, nil)
		add(StepPrecollectCA, nil)
	}
	add(StepFence, nil)
	var migrateArgs json.RawMessage
	if req.Republish {
		migrateArgs = json.RawMessage(`{"republish":true}`)
	}
	add(StepMigrate, migrateArgs)
	if req.Mode == ModeLocal {
		add(StepAll, nil)
	} else {
		add(StepNodelocal, nil)
		add(StepCA, nil)
	}
	add(StepCleanup, nil)
	add(StepUnfence, nil)
	return steps
}

// newRun builds the record of an accepted request: its steps with one entry
// per node where the hook runs on nodes. Every hook must exist.
func newRun(req Request, nodes []string, reg *hooks.Registry) (*Run, error) {
	run := &Run{Request: req, State: StateRunning}
	run.Nodes = nodes
	specs := []stepSpec{{req.Hook, req.Args}}
	if req.Action == ActionUpgrade {
		specs = planSteps(req)
		run.Preflight = &Preflight{State: PreflightPending}
	}
	for _, sp := range specs {
		h, err := reg.Get(sp.name)
		if err != nil {
			return nil, err
		}
		switch h.Placement() {
		case hooks.Leader:
			run.Steps = append(run.Steps, Step{Name: sp.name, Placement: hooks.Leader, State: StatePending, Args: sp.args})
		case hooks.EveryNode:
			for _, n := range nodes {
				run.Steps = append(run.Steps, Step{Name: sp.name, Node: n, Placement: hooks.EveryNode, State: StatePending, Args: sp.args})
			}
		case hooks.OneNode:
			if len(nodes) != 1 {
				return nil, fmt.Errorf("step %s runs on one node; the run names %d", sp.name, len(nodes))
			}
			run.Steps = append(run.Steps, Step{Name: sp.name, Node: nodes[0], Placement: hooks.OneNode, State: StatePending, Args: sp.args})
		default:
			return nil, fmt.Errorf("hook %s has unknown placement %q", sp.name, h.Placement())
		}
	}
	return run, nil
}
