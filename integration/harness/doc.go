// Package harness runs the real rokup binaries as separate processes
// against a 3-member etcd cluster (embedded in the test process, or Debian's
// etcd 3.4 as external processes), seeds a pre-0.14 installation with
// `rokup seed`, injects faults (SIGKILL, SIGSTOP/SIGCONT, member stop and
// restart, a TCP proxy that partitions or delays one sidecar) and checks
// every invariant of package verify after a scenario. All traffic stays on
// 127.0.0.1, and every wait is bounded.
//
// Start here: New (env.go) builds an Env from Options: the binaries
// (Binaries, built once), a cluster (StartCluster, embedded or etcd 3.4),
// a seeded installation, one sidecar Proc per node. Env.StartSidecars,
// Env.Start (writes the control key) and Env.WaitRun drive a run; Pause,
// Partition (through a Proxy) and Trigger (act when a key changes) inject
// faults; Env.Check returns the verify checks of the Invariants a
// scenario must keep.
package harness
