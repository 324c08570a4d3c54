package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/hooks"
)

// Config is what the sidecar knows about the Gateway store.
type Config struct {
	Prefix          string // default /rok/gw
	MaxTxnOps       int
	MaxRequestBytes int
	InFlight        int
}

// HookName is the name of the migrate step in the upgrade plan
// (docs/design.md#plan).
const HookName = "gw-migrate"

// MigrateArgs are the gw-migrate hook's arguments.
type MigrateArgs struct {
	Republish bool `json:"republish"`
	Force     bool `json:"force"`
}

// NewMigrateHook returns the gw-migrate hook: on the leader, apply every
// unapplied Gateway migration (the move and the marking of published
// buckets), then, if asked, re-publish the buckets. Every write carries
// the task's leader guard.
func NewMigrateHook(cli *clientv3.Client, v2 clientv2.Client, cfg Config) hooks.Hook {
	return &migrateHook{cli: cli, v2: conn.NewKeysAPI(v2), cfg: cfg}
}

type migrateHook struct {
	cli *clientv3.Client
	v2  clientv2.KeysAPI
	cfg Config
}

func (h *migrateHook) Name() string               { return HookName }
func (h *migrateHook) Placement() hooks.Placement { return hooks.Leader }

// Run applies the plan; cancelling ctx stops after the current batch.
func (h *migrateHook) Run(ctx context.Context, task hooks.Task) error {
	var args MigrateArgs
	if len(bytes.TrimSpace(task.Args)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(task.Args))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&args); err != nil {
			return fmt.Errorf("%s: arguments %s: %w (want {\"republish\": bool, \"force\": bool})", HookName, task.Args, err)
		}
	}
	ex, err := NewExecutor(GW(), Env{
		V3: h.cli, V2: h.v2, Prefix: h.cfg.Prefix, Guard: task.Guard,
		Move: MoveOptions{MaxTxnOps: h.cfg.MaxTxnOps, MaxRequestBytes: h.cfg.MaxRequestBytes, InFlight: h.cfg.InFlight, Force: args.Force},
	})
	if err != nil {
		return err
	}
	// The step's items are the documents moved; later notes (republish)
	// keep that count rather than resetting it.
	var moved hooks.Progress
	ex.OnProgress = func(p Progress) {
		note := p.Step.String() + " " + p.Phase
		if p.Bytes > 0 { // the copy: no total, so how much it has copied
			note += fmt.Sprintf(", %.1f MiB", float64(p.Bytes)/(1<<20))
		}
		moved = hooks.Progress{Done: p.Done, Total: p.Total, Note: note}
		task.Progress(moved)
	}
	applied, err := ex.Applied(ctx)
	if err != nil {
		return err
	}
	plan, err := ex.Plan("", "", applied)
	if err != nil {
		return err
	}
	if _, err := ex.Run(ctx, plan, RunOptions{}); err != nil {
		return fmt.Errorf("%s: %w", HookName, err)
	}
	if args.Republish {
		rep, err := Republish(ctx, h.cli, nil, BucketsOptions{Prefix: h.cfg.Prefix, Guard: task.Guard})
		if err != nil {
			return fmt.Errorf("%s: republish: %w", HookName, err)
		}
		moved.Note = "republished " + rep.String()
		task.Progress(moved)
	}
	return nil
}
