package hooks

import (
	"errors"
	"fmt"
	"sort"
)

// ErrDuplicateHook is returned when two hooks share a name.
var ErrDuplicateHook = errors.New("hooks: duplicate hook name")

// ErrUnknownHook is returned for a name no hook has.
var ErrUnknownHook = errors.New("hooks: unknown hook")

// Registry holds every hook of the sidecar by name. The order of the hooks
// it is built from means nothing; the plan decides the order of steps.
type Registry struct {
	byName map[string]Hook
}

// NewRegistry builds the registry of hs, failing when two hooks share a
// name.
func NewRegistry(hs []Hook) (*Registry, error) {
	r := &Registry{byName: make(map[string]Hook, len(hs))}
	for _, h := range hs {
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
