// Package sidecar wires the rokup sidecar with fx: configuration, the zap
// logger (shared with etcd), an optional embedded etcd member, the etcd
// clients, every step's hook, the upgrade agent (election, control key,
// workers) and a metrics endpoint. Each feature is an fx.Module; lifecycle
// hooks only start and stop things.
//
// Start here: New and Options (app.go) list the modules. StepsModule
// (steps.go) provides the hook of every step of the plan; As and
// HooksModule (hooks.go) are how a hook joins the registry, and how a
// plugin adds a step (see ExampleAs). AgentModule runs upgrade.Sidecar, the
// agent that campaigns and runs the steps.
package sidecar
