// Package seed writes a pre-0.14 Rok installation of a chosen size into an
// etcd (v2 store) and storage roots, deterministically for a seed: Gateway
// documents in v2 (nested, some with TTLs, the hidden v2-era migration
// ledger, buckets some of them published, versions naming their maps), the
// stale v2 /epochs cache, and nodelocal plus shared local storage with maps
// that reference chocks, a share of garbage, and a few bad entries. The
// returned Manifest says what was written, so tests, the demo, the bench and
// the fault-matrix checker can tell what must survive.
//
// It streams: every object is computed from the seed and its index when it
// is written, and the manifest regenerates them when read, so a seed of 10
// million objects needs no more memory than one of a thousand. The v2
// epoch cache is capped (DefaultV2EpochMax): etcd's v2 store keeps its keys
// in memory.
//
// Start here: Run (seed.go) writes an installation from a Config and
// returns its Manifest (Manifest.WriteFile and ReadManifest keep it on
// disk for other processes); Layout (layout.go) places each node's
// storage roots under one directory.
package seed
