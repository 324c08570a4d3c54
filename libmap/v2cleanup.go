package libmap

import (
	"context"
	"errors"
	"fmt"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/hooks"
)

// HookV2Cleanup is the name of the v2 cleanup step (docs/design.md#plan).
const HookV2Cleanup = "v2-epochs-cleanup"

// DefaultV2Dir is the stale epoch cache in the v2 store.
const DefaultV2Dir = "/epochs"

// NewV2CleanupHook deletes the stale v2 epoch cache dir recursively, as
// `ETCDCTL_API=2 etcdctl rm -r /epochs` does by hand. It runs on the master;
// kv is the v3 client its leader guard is checked with. Running it again
// when the dir is already gone succeeds.
//
// A v2 delete cannot carry a v3 compare, so the guard is checked right
// before the delete: a master deposed in the window between the two can
// still delete the dir once. That is harmless: the delete is idempotent
// and the new master's step deletes the same thing.
func NewV2CleanupHook(keys clientv2.KeysAPI, kv clientv3.KV, dir string) hooks.Hook {
	if dir == "" {
		dir = DefaultV2Dir
	}
	return &v2Cleanup{keys: keys, kv: kv, dir: dir}
}

type v2Cleanup struct {
	keys clientv2.KeysAPI
	kv   clientv3.KV
	dir  string
}

func (h *v2Cleanup) Name() string               { return HookV2Cleanup }
func (h *v2Cleanup) Placement() hooks.Placement { return hooks.Leader }

func (h *v2Cleanup) Run(ctx context.Context, task hooks.Task) error {
	task.Progress(hooks.Progress{Total: 1, Note: "deleting v2 " + h.dir})
	if err := task.Guard.Check(ctx, h.kv); err != nil {
		return fmt.Errorf("%s: %w", HookV2Cleanup, err)
	}
	note := "deleted v2 " + h.dir
	_, err := h.keys.Delete(ctx, h.dir, &clientv2.DeleteOptions{Recursive: true})
	var cerr clientv2.Error
	switch {
	case errors.As(err, &cerr) && cerr.Code == clientv2.ErrorCodeKeyNotFound:
		note = "v2 " + h.dir + " already gone"
	case err != nil:
		return fmt.Errorf("%s: delete v2 %s: %w", HookV2Cleanup, h.dir, conn.V2Error(err))
	}
	task.Progress(hooks.Progress{Done: 1, Total: 1, Note: note})
	return nil
}
