//go:build !linux

package composer

import (
	"io"
	"os"
	"syscall"
)

// chockDir looks chocks up by full path where no relative look-up is
// wired (the composer runs on Linux).
type chockDir struct{ path string }

func openChockDir(path string) chockDir   { return chockDir{path: path} }
func (c chockDir) absent(rel string) bool { return absentPath(c.path + "/" + rel) }
func (c chockDir) close()                 {}

// objDir stands for a folder held open where relative look-ups are not
// wired: entries are checked and opened by full path.
type objDir struct{}

var noDir objDir

func openObjDir(string) objDir { return noDir }
func (objDir) close()          {}

func canReadAt(_ objDir, _, path string) error { return syscall.Access(path, 4 /* R_OK */) }

func openRawAt(_ objDir, _, path string) (io.ReadCloser, error) { return os.Open(path) }

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
