package hooks

import (
	"errors"
	"fmt"
	"sort"

	"go.uber.org/fx"
)

// ErrDuplicateHook is returned when two hooks share a name.
var ErrDuplicateHook = errors.New("hooks: duplicate hook name")

// ErrUnknownHook is returned for a name no hook has.
var ErrUnknownHook = errors.New("hooks: unknown hook")

// Registry holds every hook of the sidecar by name. The order of the group
// means nothing; the plan decides the order of steps.
type Registry struct {
	byName map[string]Hook
}

// RegistryParams receives every hook provided to the "hooks" value group.
type RegistryParams struct {
	fx.In
	Hooks []Hook `group:"hooks"`
}

// NewRegistry builds the registry, failing (and so failing the app's
// start) when two hooks share a name.
func NewRegistry(p RegistryParams) (*Registry, error) {
	r := &Registry{byName: make(map[string]Hook, len(p.Hooks))}
	for _, h := range p.Hooks {
		if _, dup := r.byName[h.Name()]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateHook, h.Name())
		}
		r.byName[h.Name()] = h
	}
	return r, nil
}

// Get returns the hook named name.
func (r *Registry) Get(name string) (Hook, error) {
	h, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownHook, name, r.Names())
	}
	return h, nil
}

// Names lists the hooks, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// As provides a hook constructor to the "hooks" value group:
//
//	fx.Provide(hooks.As(gateway.NewMigrateHook))
func As(constructor any) any {
	return fx.Annotate(constructor, fx.As(new(Hook)), fx.ResultTags(`group:"hooks"`))
}

// Module provides the registry.
var Module = fx.Module("hooks", fx.Provide(NewRegistry))
