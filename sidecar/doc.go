// Package sidecar wires the rokup sidecar with fx: configuration, the zap
// logger (shared with etcd), an optional embedded etcd member, the etcd
// clients, every step's hook, the upgrade agent (election, control key,
// workers) and a metrics endpoint. Each feature is an fx.Module; lifecycle
// hooks only start and stop things.
package sidecar
