package upgrade

import "strings"

// DefaultPrefix is the root of the upgrade's keys (docs/design.md#state-keys).
const DefaultPrefix = "/rok/upgrade"

// Keys names the upgrade's keys under one prefix.
type Keys struct{ Prefix string }

// DefaultKeys are the default keys (docs/design.md#state-keys).
var DefaultKeys = Keys{Prefix: DefaultPrefix}

func (k Keys) p() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return strings.TrimSuffix(k.Prefix, "/")
}

// Control is the key the operator writes.
func (k Keys) Control() string { return k.p() + "/control" }

// Election is the election prefix.
func (k Keys) Election() string { return k.p() + "/leader/" }

// Members is the prefix of live sidecars, each bound to its session lease.
func (k Keys) Members() string { return k.p() + "/members/" }

// Member is one live sidecar.
func (k Keys) Member(node string) string { return k.Members() + node }

// Known is the prefix of every node that ever ran a sidecar. Unlike
// members it survives a crash, so a run can name a node that is down.
func (k Keys) Known() string { return k.p() + "/nodes/" }

// Runs is the prefix of run records and their per-node state.
func (k Keys) Runs() string { return k.p() + "/runs/" }

// Run is one run's record.
func (k Keys) Run(id string) string { return k.Runs() + id }

// NodeState is one node's steps of one run.
func (k Keys) NodeState(id, node string) string { return k.Run(id) + "/nodes/" + node }

// parseRunKey splits a key under Runs into the run id and, for a per-node
// key, the node; ok is false for anything else.
func (k Keys) parseRunKey(key string) (id, node string, ok bool) {
	rest, found := strings.CutPrefix(key, k.Runs())
	if !found || rest == "" {
		return "", "", false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1:
		return parts[0], "", true
	case len(parts) == 3 && parts[1] == "nodes" && parts[2] != "":
		return parts[0], parts[2], true
	}
	return "", "", false
}
