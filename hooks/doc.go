// Package hooks is the plugin surface of the sidecar: every step of the
// upgrade, and any task an operator runs by name, is a Hook. A step package
// (gc, gateway, composer, libmap, or a site's own) imports this package and
// nothing of the sidecar's wiring.
//
// Start here: Hook (hook.go) is a name, a Placement (the master, every node,
// or one node) and an idempotent Run. Run is given a Task: the run and the
// node, the request's arguments, the master's fencing.Guard to put in every
// write, and a Reporter for Progress. A Registry (registry.go) holds the
// hooks by name. The plan in package upgrade decides their order; in the
// sidecar, sidecar.As adds a hook (its example adds a step and runs it).
package hooks
