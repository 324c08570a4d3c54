//go:build !linux

package gc

// renameNoReplace renames old to new, failing with fs.ErrExist when new
// exists: link fails when new exists, and a crash between the link and the
// unlink leaves both names, which the next put back resolves.
func renameNoReplace(old, new string) error { return linkThenRemove(old, new) }
