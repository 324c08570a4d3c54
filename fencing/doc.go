// Package fencing holds the three guards of the upgrade, written the way
// etcd's client/v3/concurrency writes its primitives: the GC fence (while it
// exists no GC deletes anything), GC instance registration (one live GC per
// node, one CA sweep cluster-wide), and the leader guard (a master's writes
// are conditional on it still being master). Each exposes its ownership as
// a clientv3.Cmp so callers fence their own transactions with it.
package fencing
