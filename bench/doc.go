// Package bench measures the upgrade's throughput side by side with what a
// naive tool would do and with what etcd itself can take: the numbers an
// operator needs to size a maintenance window (docs/design.md#performance).
//
// One Run seeds a pre-0.14 installation (package seed), then times, on the
// same etcd and in the same process: the ceiling (batched transactional
// puts of the same number of keys with the same sizes), the naive paths
// (one request per document or object, in sequence, possibly on a sample),
// and the real tools (gateway.Move; composer.UpdateScopes for every node's
// nodelocal scopes at once, then the CA scopes, as a cluster's steps run;
// gc.Run right after the epoch update). Each path records its peak memory.
//
// Start here: Run (bench.go) takes a Config (sizes; Etcd, an existing
// cluster instead of an embedded member) and returns a Result, the JSON
// `rokup bench -o json` prints (docs/design.md#performance); Result.Text
// prints the table. run.go times the paths (the Gateway's, then the epochs'
// and the GC's), ceiling.go the ceiling's search for its best batch setting,
// env.go where a run writes (Keys: the default keys on its own member, a
// scratch prefix on a cluster), mem.go the peak memory of each path.
package bench
