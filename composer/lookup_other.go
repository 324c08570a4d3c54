//go:build !linux

package composer

import (
	"io"
	"os"
)

// chockDir looks chocks up by full path where no relative look-up is
// wired (the composer runs on Linux).
type chockDir struct{ path string }

func openChockDir(path string) chockDir   { return chockDir{path: path} }
func (c chockDir) absent(rel string) bool { return absentPath(c.path + "/" + rel) }
func (c chockDir) close()                 {}

func openRaw(path string) (io.ReadCloser, error) { return os.Open(path) }
