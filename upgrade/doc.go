// Package upgrade runs the Rok 0.14 upgrade as a plan of hooks: the elected
// master reads the control key, records the run in etcd, runs the leader
// steps itself (every write guarded by its leadership term), hands the
// per-node steps to each node's sidecar through per-node keys, and waits for
// them. Every state change is persisted, so a new master or a restarted node
// resumes where the run stopped: finished steps are not redone, a step in
// progress is run again (hooks are idempotent).
//
// Start here: Sidecar (sidecar.go) is one node's agent; New builds it and
// Run campaigns for leadership (fencing.Campaign) while working the node's
// steps (worker.go). The elected master's loop is lead (leader.go): it reads
// the control key (control.go: Request, DecodeRequest), checks a run before
// its first write (preflight.go), builds it from the plan (plan.go: the step
// list) and drives it. The records are Run and Step (record.go), read and
// written through Store (store.go) under Keys (keys.go).
package upgrade
