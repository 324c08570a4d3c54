package sidecar

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/rokup/rokup/gc"
)

// DefaultRecoverInterval is how often the sidecar looks for files a killed
// GC left set aside on this node's storage.
const DefaultRecoverInterval = 30 * time.Second

// RecoverModule puts back, at start and then every RecoverInterval, what
// a GC killed mid-deletion left set aside under this node's storage roots
// (gc.Recover): a file whose object is still live must not wait for the
// next GC run to be readable again. Only instances whose lease is gone are
// touched, so a GC running beside the sidecar is never disturbed.
var RecoverModule = fx.Module("gc-recover",
	fx.Invoke(startRecovery),
)

type recoverParams struct {
	fx.In
	LC  fx.Lifecycle
	Cfg Config
	Lg  *zap.Logger
	Cli *clientv3.Client
}

func startRecovery(p recoverParams) {
	roots := []string{p.Cfg.NodelocalRoot, p.Cfg.LocalRoot}
	every := p.Cfg.RecoverInterval
	if every <= 0 {
		every = DefaultRecoverInterval
	}
	lg := p.Lg.Named("gc-recover")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.LC.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				t := time.NewTicker(every)
				defer t.Stop()
				for {
					recoverOnce(ctx, p.Cli, roots, lg)
					select {
					case <-ctx.Done():
						return
					case <-t.C:
					}
				}
			}()
			return nil
		},
		OnStop: func(context.Context) error { cancel(); <-done; return nil },
	})
}

func recoverOnce(ctx context.Context, cli *clientv3.Client, roots []string, lg *zap.Logger) {
	rec, err := gc.Recover(ctx, cli, roots, clientv3.NoLease)
	if err != nil && ctx.Err() == nil {
		lg.Warn("could not look for files a killed GC set aside", zap.Error(err))
	}
	if rec.Restored+rec.Superseded > 0 {
		lg.Info("put back files a killed GC had set aside",
			zap.Int64("restored", rec.Restored), zap.Int64("superseded", rec.Superseded))
	}
	for _, e := range rec.Errors {
		lg.Warn("set-aside file left in place", zap.String("error", e))
	}
}
