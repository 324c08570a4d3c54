// Package bench measures the upgrade's throughput side by side with what a
// naive tool would do and with what etcd itself can take: the numbers an
// operator needs to size a maintenance window (docs/design.md#performance).
//
// One Run seeds a pre-0.14 installation (package seed), then times, on the
// same etcd and in the same process: the ceiling (batched transactional
// puts of the same number of keys with the same sizes), the naive paths
// (one request per document or object, in sequence, possibly on a sample),
// and the real tools (gateway.Move, composer.Update over every scope, gc.Run
// right after the epoch update). Each path records its peak memory.
package bench
