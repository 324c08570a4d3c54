// Package embed runs etcd inside the rokup process: one member, or an
// N-member cluster on loopback, always with the v2 API enabled because the
// 0.14 upgrade reads the legacy v2 store and writes the v3 one of the same
// cluster. TLS and auth are options; testing helpers (a throw-away PKI, free
// ports, a cluster bound to a test's lifetime) live here too so every package
// tests against a real etcd rather than a fake.
package embed
