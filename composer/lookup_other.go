//go:build !linux

package composer

import (
	"io"
	"os"
	"syscall"
)

// heldDir stands for a folder held open where relative look-ups are not
// wired (the composer runs on Linux): entries are looked up by full path.
type heldDir struct{ path string }

// noDir holds no folder: entries are looked up by the full path given.
var noDir heldDir

func openHeldDir(path string) heldDir    { return heldDir{path: path} }
func (d heldDir) close()                 {}
func (d heldDir) absent(rel string) bool { return absentPath(d.path + "/" + rel) }

func canReadAt(_ heldDir, _, path string) error { return syscall.Access(path, 4 /* R_OK */) }

func openRawAt(_ heldDir, _, path string) (io.ReadCloser, error) { return os.Open(path) }

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
