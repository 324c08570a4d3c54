package composer

import (
	"context"
	"io"
	"strings"
	"sync/atomic"

	"github.com/rokup/rokup/libmap"
)

// BeforeObjectReads makes every classification call f first, with
// whether it is about to open a map or check its readability (true), or
// check a chock's (false), so that tests outside the package can hold one
// scope's scan at a chosen point. It returns what puts the real look-ups
// back.
func BeforeObjectReads(f func(isMap bool)) (restore func()) {
	openFile = func(dir heldDir, name, path string) (io.ReadCloser, error) {
		f(true)
		return openRawAt(dir, name, path)
	}
	canRead = func(dir heldDir, name, path string) error {
		f(strings.Contains(path, "/maps-")) // <root>/maps-uuid/…, <root>/maps-ca/…
		return canReadAt(dir, name, path)
	}
	return func() { openFile, canRead = openRawAt, canReadAt }
}

// HoldCount makes UpdateScopes' progress count call hold first, then
// count as it does. It returns what puts the real count back.
func HoldCount(hold func()) (restore func()) {
	countScope = func(l Layout, ctx context.Context, scope libmap.Scope) (int64, error) {
		hold()
		return l.Count(ctx, scope)
	}
	return func() { countScope = Layout.Count }
}

// CountMapOpens counts in n the map files the scans open (set after
// BeforeObjectReads, if both are used). It returns what puts the real
// open back.
func CountMapOpens(n *atomic.Int64) (restore func()) {
	open := openFile
	openFile = func(dir heldDir, name, path string) (io.ReadCloser, error) {
		n.Add(1)
		return open(dir, name, path)
	}
	return func() { openFile = open }
}
