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

// countEntries counts the entries of the folder dir; an unreadable folder
// counts as one, as Scan reports it.
func countEntries(dir string) int64 {
	f, err := os.Open(dir)
	if err != nil {
		return 1
	}
	defer f.Close()
	var n int64
	for {
		names, err := f.Readdirnames(DefaultChunk)
		n += int64(len(names))
		if err == io.EOF || (err == nil && len(names) == 0) {
			return n
		}
		if err != nil {
			return n + 1
		}
	}
}
