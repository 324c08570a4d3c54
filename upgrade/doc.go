// Package upgrade runs the Rok 0.14 upgrade as a plan of hooks: the elected
// master reads the control key, records the run in etcd, runs the leader
// steps itself (every write guarded by its leadership term), hands the
// per-node steps to each node's sidecar through per-node keys, and waits for
// them. Every state change is persisted, so a new master or a restarted node
// resumes where the run stopped: finished steps are not redone, a step in
// progress is run again (hooks are idempotent).
package upgrade
