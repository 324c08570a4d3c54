// Package embed runs etcd inside the rokup process: one member, or an
// N-member cluster on loopback, always with the v2 API enabled because the
// 0.14 upgrade reads the legacy v2 store and writes the v3 one of the same
// cluster. TLS and auth are options; testing helpers (a throw-away PKI, free
// ports, a cluster bound to a test's lifetime) live here too so every package
// tests against a real etcd rather than a fake.
//
// Start here: Start (member.go) runs one member from a Config;
// StartCluster (cluster.go) runs N on loopback, with Stop and Restart for
// fault tests. Tests use testing.go: NewTestMember, NewTestCluster,
// NewTestClient and NewTestV2 give a member and clients that end with the
// test. pki.go makes a throw-away CA and certificates, auth.go turns on
// etcd's auth, and external.go finds Debian's etcd 3.4 for the tests
// that want a real external etcd.
package embed
