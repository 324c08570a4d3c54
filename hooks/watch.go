package hooks

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rokup/rokup/internal/backoff"
)

// ControlEvent is one state of the control key.
type ControlEvent struct {
	Value   []byte
	Rev     int64 // the key's mod revision; 0 when the key is absent
	Deleted bool
}

// WatchControl delivers the control key's current state first, then every
// change, until ctx ends. It survives a broken watch (etcd restarted, the
// revision compacted) by reading the key again and watching from there, so
// a change is never missed, though an intermediate one may be folded into
// the next: callers act on the latest value, which is what an operator
// means. The channel is closed when ctx ends.
func WatchControl(ctx context.Context, cli *clientv3.Client, key string, lg *zap.Logger) <-chan ControlEvent {
	out := make(chan ControlEvent, 1)
	go func() {
		defer close(out)
		var retry backoff.Backoff
		for ctx.Err() == nil {
			resp, err := cli.Get(ctx, key)
			if err != nil {
				lg.Warn("read control key", zap.String("key", key), zap.Error(err))
				retry.Wait(ctx)
				continue
			}
			retry.Reset()
			ev := ControlEvent{Deleted: true}
			if len(resp.Kvs) == 1 {
				ev = ControlEvent{Value: resp.Kvs[0].Value, Rev: resp.Kvs[0].ModRevision}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			wch := cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(resp.Header.Revision+1))
			for wr := range wch {
				if wr.Err() != nil {
					lg.Warn("control key watch broke; re-reading", zap.Error(wr.Err()))
					break
				}
				for _, e := range wr.Events {
					ev := ControlEvent{Value: e.Kv.Value, Rev: e.Kv.ModRevision}
					if e.Type == clientv3.EventTypeDelete {
						ev = ControlEvent{Deleted: true, Rev: e.Kv.ModRevision}
					}
					select {
					case out <- ev:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return out
}
