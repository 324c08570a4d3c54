package harness

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Trigger watches every change of the v3 store from now on and closes the
// returned channel at the first change for which match returns true. It
// is how a fault lands at an exact point of a run (the fence written, the
// n-th document moved) rather than after a guessed delay. Cancel stops it.
func (e *Env) Trigger(match func(key string, value []byte, deleted bool) bool) (fired <-chan struct{}, cancel func()) {
	ctx, cancelCtx := context.WithCancel(context.Background())
	ch := make(chan struct{})
	// The current revision first, so no change is missed or replayed.
	head, err := e.Cli.Get(ctx, "/", clientv3.WithCountOnly())
	from := int64(0)
	if err == nil {
		from = head.Header.Revision + 1
	}
	opts := []clientv3.OpOption{clientv3.WithFromKey()}
	if from > 0 {
		opts = append(opts, clientv3.WithRev(from))
	}
	wch := e.Cli.Watch(ctx, "\x00", opts...)
	go func() {
		for resp := range wch {
			for _, ev := range resp.Events {
				if match(string(ev.Kv.Key), ev.Kv.Value, ev.Type == clientv3.EventTypeDelete) {
					close(ch)
					cancelCtx()
					for range wch {
					}
					return
				}
			}
		}
	}()
	return ch, cancelCtx
}
