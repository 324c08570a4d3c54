package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
)

// Names of the GC hooks, as the plan and `action: task` name them.
const (
	FenceHook        = "gc-fence"
	UnfenceHook      = "gc-unfence"
	PrecollectHook   = "gc-precollect"
	PrecollectCAHook = "gc-precollect-ca"
)

// FenceArgs are the optional arguments of gc-fence and gc-unfence.
type FenceArgs struct {
	Holder string `json:"holder,omitempty"` // default "upgrade/<run id>"
	Reason string `json:"reason,omitempty"`
}

// HookOption tunes the hooks' runs (prefixes, fence key).
type HookOption func(*Config)

// WithGWPrefix sets the Gateway prefix the CA pre-collection reads.
func WithGWPrefix(p string) HookOption { return func(c *Config) { c.GWPrefix = p } }

// WithFence sets the fence the hooks set, release and obey.
func WithFence(f *fencing.Fence) HookOption { return func(c *Config) { c.Fence = f } }

func hookConfig(opts []HookOption) Config {
	var c Config
	for _, o := range opts {
		o(&c)
	}
	return c
}

func fenceOf(cli *clientv3.Client, c Config) *fencing.Fence {
	if c.Fence != nil {
		return c.Fence
	}
	return fencing.NewFence(cli)
}

func decodeFenceArgs(t hooks.Task) (FenceArgs, error) {
	var a FenceArgs
	if len(t.Args) > 0 && string(t.Args) != "null" {
		dec := json.NewDecoder(bytes.NewReader(t.Args))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return a, fmt.Errorf("gc: bad arguments %s: %w", t.Args, err)
		}
	}
	if a.Holder == "" {
		a.Holder = "upgrade/" + t.RunID
	}
	if a.Reason == "" {
		a.Reason = fmt.Sprintf("Rok 0.14 upgrade, run %s", t.RunID)
	}
	return a, nil
}

// NewFenceHook is gc-fence: the leader sets the GC fence for the run
// (holder "upgrade/<run id>" unless Args say otherwise), guarded by its
// term. Re-running it for the same holder changes nothing; a fence held by
// someone else fails the step, naming them: the upgrade does not take over
// an operator's fence, which the operator could lift mid-upgrade.
func NewFenceHook(cli *clientv3.Client, opts ...HookOption) hooks.Hook {
	return &fenceHook{cli: cli, cfg: hookConfig(opts)}
}

type fenceHook struct {
	cli *clientv3.Client
	cfg Config
}

func (h *fenceHook) Name() string               { return FenceHook }
func (h *fenceHook) Placement() hooks.Placement { return hooks.Leader }

func (h *fenceHook) Run(ctx context.Context, t hooks.Task) error {
	a, err := decodeFenceArgs(t)
	if err != nil {
		return err
	}
	held, err := fenceOf(h.cli, h.cfg).Set(ctx, a.Holder, a.Reason, fencing.WithGuard(t.Guard))
	if err != nil {
		return err
	}
	t.Progress(hooks.Progress{Done: 1, Total: 1, Note: "GC fenced, " + held.String()})
	return nil
}

// NewUnfenceHook is gc-unfence: the leader lifts the run's fence, guarded
// by its term. A fence already gone is success; a fence now held by
// someone else is left in place (it is not the run's to lift) and noted.
func NewUnfenceHook(cli *clientv3.Client, opts ...HookOption) hooks.Hook {
	return &unfenceHook{cli: cli, cfg: hookConfig(opts)}
}

type unfenceHook struct {
	cli *clientv3.Client
	cfg Config
}

func (h *unfenceHook) Name() string               { return UnfenceHook }
func (h *unfenceHook) Placement() hooks.Placement { return hooks.Leader }

func (h *unfenceHook) Run(ctx context.Context, t hooks.Task) error {
	a, err := decodeFenceArgs(t)
	if err != nil {
		return err
	}
	released, err := fenceOf(h.cli, h.cfg).Release(ctx, a.Holder, fencing.WithGuard(t.Guard))
	note := "GC fence released"
	switch {
	case errors.Is(err, fencing.ErrHeld):
		note = "the run's fence is gone; " + err.Error() + ": left in place"
	case err != nil:
		return err
	case !released:
		note = "GC fence already released"
	}
	t.Progress(hooks.Progress{Done: 1, Total: 1, Note: note})
	return nil
}

// NewPrecollectHook is gc-precollect: on every node, before the fence, a
// nodelocal GC run in the pre-upgrade mode (V2Epochs), so fewer objects
// need an epoch during the upgrade. A fence (the run resumed past its
// fence step, or an operator's) skips or stops it without failing the
// step: it is an optimisation, and the fence always wins.
func NewPrecollectHook(cli *clientv3.Client, v2 clientv2.KeysAPI, nodelocalRoot string, opts ...HookOption) hooks.Hook {
	c := hookConfig(opts)
	c.Layout = composer.Layout{Nodelocal: nodelocalRoot}
	c.V2, c.V2Epochs = v2, v2 != nil
	return &precollectHook{cli: cli, cfg: c, name: PrecollectHook, placement: hooks.EveryNode}
}

// NewPrecollectCAHook is gc-precollect-ca: the same on the shared CA
// storage, run by the leader with its term guarding every write.
func NewPrecollectCAHook(cli *clientv3.Client, v2 clientv2.KeysAPI, localRoot string, opts ...HookOption) hooks.Hook {
	c := hookConfig(opts)
	c.Layout = composer.Layout{Local: localRoot}
	c.CA = true
	c.V2, c.V2Epochs = v2, v2 != nil
	return &precollectHook{cli: cli, cfg: c, name: PrecollectCAHook, placement: hooks.Leader}
}

type precollectHook struct {
	cli       *clientv3.Client
	cfg       Config
	name      string
	placement hooks.Placement
}

func (h *precollectHook) Name() string               { return h.name }
func (h *precollectHook) Placement() hooks.Placement { return h.placement }

func (h *precollectHook) Run(ctx context.Context, t hooks.Task) error {
	cfg := h.cfg
	cfg.Node, cfg.Guard = t.Node, t.Guard
	cfg.OnProgress = func(p Progress) {
		t.Progress(hooks.Progress{Done: p.Scanned, Errors: p.Errors, Note: fmt.Sprintf("%s, %d deleted", p.Phase, p.Deleted)})
	}
	r, err := Run(ctx, h.cli, cfg)
	if errors.Is(err, fencing.ErrFenced) {
		// Pre-collection only saves the upgrade time; the fence wins.
		t.Progress(hooks.Progress{Done: r.Scanned, Note: fmt.Sprintf("stopped, %d deleted: %v", r.Deleted, err)})
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	t.Progress(hooks.Progress{Done: r.Scanned, Total: r.Scanned, Errors: r.Errors + r.Bad,
		Note: fmt.Sprintf("%d deleted (%s), %d stamped, %d kept as too recent", r.Deleted, humanBytes(r.BytesFreed), r.NoEpoch, r.TooRecent)})
	return nil
}
