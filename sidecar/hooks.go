package sidecar

import (
	"go.uber.org/fx"

	"github.com/rokup/rokup/hooks"
)

// As provides a hook constructor to the "hooks" value group, which
// HooksModule gathers into the registry. A plugin registers a step with it:
//
//	sidecar.New(cfg, lg, fx.Provide(sidecar.As(NewBackupHook)))
func As(constructor any) any {
	return fx.Annotate(constructor, fx.As(new(hooks.Hook)), fx.ResultTags(`group:"hooks"`))
}

// HooksModule provides the registry of every hook in the "hooks" group. Two
// hooks with one name fail the app's start; the order of the group means
// nothing (the plan orders the steps).
var HooksModule = fx.Module("hooks", fx.Provide(newRegistry))

type registryParams struct {
	fx.In
	Hooks []hooks.Hook `group:"hooks"`
}

func newRegistry(p registryParams) (*hooks.Registry, error) { return hooks.NewRegistry(p.Hooks) }
