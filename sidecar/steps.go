package sidecar

import (
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
)

// StepsModule provides the hook of every step of the 0.14 plan
// (docs/design.md#plan).
var StepsModule = fx.Module("steps",
	fx.Provide(
		func(cli *clientv3.Client) *libmap.Cache { return libmap.New(cli) },
		func(cfg Config) composer.Layout {
			return composer.Layout{Nodelocal: cfg.NodelocalRoot, Local: cfg.LocalRoot}
		},
		As(func(cli *clientv3.Client) hooks.Hook { return gc.NewFenceHook(cli) }),
		As(func(cli *clientv3.Client) hooks.Hook { return gc.NewUnfenceHook(cli) }),
		As(func(cli *clientv3.Client, v2 clientv2.KeysAPI, cfg Config) hooks.Hook {
			return gc.NewPrecollectHook(cli, v2, cfg.NodelocalRoot, gc.WithGWPrefix(cfg.GWPrefix))
		}),
		As(func(cli *clientv3.Client, v2 clientv2.KeysAPI, cfg Config) hooks.Hook {
			return gc.NewPrecollectCAHook(cli, v2, cfg.LocalRoot, gc.WithGWPrefix(cfg.GWPrefix))
		}),
		As(func(cli *clientv3.Client, v2 clientv2.Client, cfg Config) hooks.Hook {
			return gateway.NewMigrateHook(cli, v2, gateway.Config{Prefix: cfg.GWPrefix})
		}),
		As(composer.NewEpochsNodelocalHook),
		As(composer.NewEpochsCAHook),
		As(composer.NewEpochsAllHook),
		As(func(v2 clientv2.KeysAPI, cli *clientv3.Client) hooks.Hook {
			return libmap.NewV2CleanupHook(v2, cli, "")
		}),
	),
)
