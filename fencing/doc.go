// Package fencing holds the three guards of the upgrade, written the way
// etcd's client/v3/concurrency writes its primitives: the GC fence (while it
// exists no GC deletes anything), GC instance registration (one live GC per
// node, one CA sweep cluster-wide), and the leader guard (a master's writes
// are conditional on it still being master). Each exposes its ownership as
// a clientv3.Cmp so callers fence their own transactions with it.
//
// Start here: Campaign (leader.go) elects a master and returns its Guard
// (guard.go), whose Cmps go into every master-only write and whose Check
// tells a lost term (ErrNotLeader) from a failed compare. NewFence
// (fence.go) is the GC fence: Set, Release, and AbsentCmp for every GC
// deletion. Register (instance.go) is a GC's registration, whose Cmp goes
// into every deletion too. The sentinel errors are in errors.go; the
// examples show all three.
package fencing
