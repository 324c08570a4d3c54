// Package integration holds the end-to-end tests: real sidecars (the fx
// app) on an embedded multi-member etcd cluster with a seeded installation,
// checked with the invariants of package verify.
package integration
