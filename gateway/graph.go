package gateway

import (
	"fmt"
	"sort"
	"strings"
)

// Graph orders a loader's migrations by dependency.
type Graph struct {
	byKey    map[Key]*Migration
	order    []Key // topological, ties broken by key
	children map[Key][]Key
}

// NewGraph checks the loader's dependencies and orders them. A dependency
// on a migration that does not exist and a cycle are errors.
func NewGraph(r *Loader) (*Graph, error) {
	g := &Graph{byKey: map[Key]*Migration{}, children: map[Key][]Key{}}
	for _, m := range r.Migrations() {
		g.byKey[m.Key()] = m
	}
	keys := make([]Key, 0, len(g.byKey))
	for k, m := range g.byKey {
		keys = append(keys, k)
		for _, d := range m.Deps {
			if _, ok := g.byKey[d]; !ok {
				return nil, fmt.Errorf("%w: %s depends on %s, which is not registered", ErrDependency, k, d)
			}
			g.children[d] = append(g.children[d], k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	const (
		unseen = iota
		visiting
		done
	)
	state := map[Key]int{}
	var path []Key
	var visit func(k Key) error
	visit = func(k Key) error {
		switch state[k] {
		case done:
			return nil
		case visiting:
			var loop []string
			for i := len(path) - 1; i >= 0; i-- {
				loop = append([]string{path[i].String()}, loop...)
				if path[i] == k {
					break
				}
			}
			return fmt.Errorf("%w: %s -> %s", ErrCycle, strings.Join(loop, " -> "), k)
		}
		state[k] = visiting
		path = append(path, k)
		deps := append([]Key(nil), g.byKey[k].Deps...)
		sort.Slice(deps, func(i, j int) bool { return deps[i].String() < deps[j].String() })
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[k] = done
		g.order = append(g.order, k)
		return nil
	}
	for _, k := range keys {
		if err := visit(k); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Order is every migration, dependencies first.
func (g *Graph) Order() []Key { return append([]Key(nil), g.order...) }

// Leaves are an app's migrations that no other migration of the app
// depends on: migrating an app means migrating to its leaves.
func (g *Graph) Leaves(app string) []Key {
	var leaves []Key
	for _, k := range g.order {
		if k.App != app {
			continue
		}
		leaf := true
		for _, c := range g.children[k] {
			if c.App == app {
				leaf = false
			}
		}
		if leaf {
			leaves = append(leaves, k)
		}
	}
	return leaves
}

// Ancestors returns targets and everything they depend on, in order.
func (g *Graph) Ancestors(targets ...Key) []Key {
	want := map[Key]bool{}
	var mark func(k Key)
	mark = func(k Key) {
		if want[k] {
			return
		}
		want[k] = true
		for _, d := range g.byKey[k].Deps {
			mark(d)
		}
	}
	for _, t := range targets {
		mark(t)
	}
	return g.filter(want)
}

// Descendants returns everything that depends on roots (not roots
// themselves), in order.
func (g *Graph) Descendants(roots ...Key) []Key {
	want := map[Key]bool{}
	var mark func(k Key)
	mark = func(k Key) {
		for _, c := range g.children[k] {
			if !want[c] {
				want[c] = true
				mark(c)
			}
		}
	}
	for _, r := range roots {
		mark(r)
	}
	return g.filter(want)
}

func (g *Graph) filter(want map[Key]bool) []Key {
	var out []Key
	for _, k := range g.order {
		if want[k] {
			out = append(out, k)
		}
	}
	return out
}
