// Package batch writes many small changes to etcd v3 as few transactions as
// etcd accepts: each transaction is bounded by an operation count and a byte
// size (etcd's --max-txn-ops and --max-request-bytes), several are in flight
// at once, and memory is bounded by InFlight × MaxBytes (or by
// InFlightBytes, when set: many small transactions in flight, few large
// ones). The Gateway move, the epoch stamping and the GC's deletions all
// write through it.
//
// Start here: New returns a Writer; Writer.Add queues an Item (its ops go
// into one transaction together, only if its compares hold) and Close
// flushes and waits. Config carries what every transaction shares: the
// leader guard (Config.Guard, docs/design.md#leader-fencing), the caller's
// own compares (Config.Cmps, the GC's fence and instance), and OnConflict,
// which gets the items of a transaction whose compares failed. An Item's
// Prepare, Done and Abandon hooks are how the GC moves a file aside right
// before its transaction and removes or puts it back after
// (docs/design.md#set-aside-window).
package batch
