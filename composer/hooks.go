package composer

import (
	"context"
	"fmt"
	"strings"

	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
)

// Hook names of the plan's stamping steps (docs/design.md#plan).
const (
	HookNodelocal = "epochs-nodelocal"
	HookCA        = "epochs-ca"
	HookAll       = "epochs-all"
)

// NewEpochsNodelocalHook stamps this node's maps-uuid and chocks-idx from
// its nodelocal root; the task's node qualifies the ids. It runs on every
// node of the run.
func NewEpochsNodelocalHook(cache *libmap.Cache, l Layout) hooks.Hook {
	return &epochsHook{name: HookNodelocal, placement: hooks.EveryNode, cache: cache, layout: l, scopes: libmap.NodelocalScopes()}
}

// NewEpochsCAHook stamps maps-ca and chocks-ca of the shared local root, on
// the master only: every write carries the task's leader guard, so a
// deposed master stops with fencing.ErrNotLeader and the next one re-runs.
func NewEpochsCAHook(cache *libmap.Cache, l Layout) hooks.Hook {
	return &epochsHook{name: HookCA, placement: hooks.Leader, cache: cache, layout: l, scopes: libmap.CAScopes()}
}

// NewEpochsAllHook stamps the four scopes on the one node of a local-mode
// run (the guide's epoch-update --all).
func NewEpochsAllHook(cache *libmap.Cache, l Layout) hooks.Hook {
	return &epochsHook{name: HookAll, placement: hooks.OneNode, cache: cache, layout: l, scopes: libmap.Scopes()}
}

type epochsHook struct {
	name      string
	placement hooks.Placement
	cache     *libmap.Cache
	layout    Layout
	scopes    []libmap.Scope
}

func (h *epochsHook) Name() string               { return h.name }
func (h *epochsHook) Placement() hooks.Placement { return h.placement }

// Run stamps the hook's scopes at once (UpdateScopes) and reports progress
// over all of them. Invalid entries (unreadable ones included) are counted
// as skipped, never stamped, and do not fail the step: an unstamped object
// is one GC never collects. A missing root does fail it. Cancelling ctx
// stops after the transactions in flight and returns ctx's error.
func (h *epochsHook) Run(ctx context.Context, task hooks.Task) error {
	for _, sc := range h.scopes {
		if sc.Nodelocal() && task.Node == "" {
			return fmt.Errorf("%s: the task names no node to qualify %s ids", h.name, sc)
		}
	}
	note := "stamping " + libmap.JoinScopes(h.scopes, ", ")
	var total int64 // the counted total; progress calls are serialised
	reps, err := UpdateScopes(ctx, h.cache, h.layout, h.scopes, UpdateConfig{
		Node:  task.Node,
		Guard: task.Guard,
		OnProgress: func(done, n int64) {
			total = n
			task.Progress(hooks.Progress{Done: done, Total: total, Note: note})
		},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	var done, skipped int64
	var notes []string
	for _, rep := range reps {
		done += rep.Stamped + rep.AlreadyStamped + rep.Skipped
		skipped += rep.Skipped
		notes = append(notes, summary(rep))
	}
	task.Progress(hooks.Progress{Done: done, Total: max(total, done), Skipped: skipped, Note: strings.Join(notes, "; ")})
	return nil
}

// summary is one line per scope for progress notes and logs.
func summary(r Report) string {
	s := fmt.Sprintf("%s: %d stamped, %d already stamped, %d skipped", r.Scope, r.Stamped, r.AlreadyStamped, r.Skipped)
	if r.Unreadable > 0 {
		s += fmt.Sprintf(" (%d unreadable)", r.Unreadable)
	}
	if r.MissingChocks > 0 {
		s += fmt.Sprintf(", %d missing chocks", r.MissingChocks)
	}
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}
