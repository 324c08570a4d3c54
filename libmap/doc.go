// Package libmap is the libmap epoch cache on the etcd v3 store
// (docs/design.md#epochs).
//
// Every map and chock on storage has an epoch key /epochs/<scope>/<id>
// holding a decimal epoch; /libmap/epoch holds the current epoch. Stamping
// writes the current epoch for many objects at once; Touch is the
// content-addressed cache look-up a composer makes before writing a chock;
// Advance is what a GC run does first, so that anything stamped or touched
// afterwards is protected from its sweep. The GC reads epochs with their mod
// revision (Get, Scan) and deletes an epoch key only if it is unchanged.
package libmap
