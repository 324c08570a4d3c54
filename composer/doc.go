// Package composer is the composer's on-disk storage of maps and chocks
// (docs/design.md#storage): where each object of a scope lives under a
// storage root, a streaming scanner that walks one scope without holding a
// folder listing in memory, the map-file format (one chock reference per
// line), and the classifier that tells valid objects from everything else
// found there (temporary files, bad names, misplaced hashes, links,
// unreadable files, folders where files belong). Only valid objects are ever
// stamped or collected; the rest is counted and reported.
//
// Start here: Layout (layout.go) maps a scope and a name to a path under
// the nodelocal or local root; Layout.Scan (scan.go) streams a scope's
// entries, each classified (Entry.Valid, Entry.Bad); ReadMap (mapfile.go)
// reads a map's chock references. Update (update.go) is the epoch update
// of one scope, and UpdateScopes that of several at once: what
// `rok-composer-tool epoch-update` and the plan's stamping steps run
// (hooks.go: epochs-nodelocal, epochs-ca, epochs-all, docs/design.md#plan). Put (put.go) is the composer's own write (touch,
// write, rename, stamp): the contract the GC is safe against
// (docs/design.md#epochs). identity.go ties a nodelocal root to its node.
package composer
