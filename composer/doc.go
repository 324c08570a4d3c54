// Package composer is the composer's on-disk storage of maps and chocks
// (docs/design.md#storage): where each object of a scope lives under a
// storage root, a streaming scanner that walks one scope without holding a
// folder listing in memory, the map-file format (one chock reference per
// line), and the classifier that tells valid objects from everything else
// found there (temporary files, bad names, misplaced hashes, links,
// unreadable files, folders where files belong). Only valid objects are ever
// stamped or collected; the rest is counted and reported.
package composer
