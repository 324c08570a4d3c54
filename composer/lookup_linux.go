package composer

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// heldDir is a folder held open so that its entries are looked up
// relative to it: a scan checks every object of a folder and a map names
// several chocks, and resolving the folder's whole path again for each
// costs more than the look-up itself. One that could not be opened (fd
// -1) looks up by full path.
type heldDir struct {
	path string
	fd   int
}

// noDir holds no folder: entries are looked up by the full path given.
var noDir = heldDir{fd: -1}

func openHeldDir(path string) heldDir {
	fd, err := syscall.Open(path, unix.O_PATH|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return heldDir{path: path, fd: -1}
	}
	return heldDir{path: path, fd: fd}
}

func (d heldDir) close() {
	if d.fd >= 0 {
		syscall.Close(d.fd)
	}
}

// absent reports whether nothing is at rel: a link, even a dangling one,
// is something (as lstat says).
func (d heldDir) absent(rel string) bool {
	if d.fd < 0 {
		return absentPath(d.path + "/" + rel)
	}
	err := syscall.Faccessat(d.fd, rel, 0 /* F_OK */, 0x100 /* AT_SYMLINK_NOFOLLOW */)
	return errors.Is(err, fs.ErrNotExist)
}

// canReadAt tells whether the entry name of dir, at path, may be read
// (access(2) with R_OK).
func canReadAt(dir heldDir, name, path string) error {
	if dir.fd < 0 {
		return syscall.Access(path, 4 /* R_OK */)
	}
	return syscall.Faccessat(dir.fd, name, 4 /* R_OK */, 0)
}

// openRawAt opens a map file, the entry name of dir at path, for reading
// without the poller registration os.Open tries (a wasted system call for
// a regular file), and without blocking if a FIFO took the file's place
// since the listing (it then reads as what its writers wrote, or empty).
func openRawAt(dir heldDir, name, path string) (io.ReadCloser, error) {
	at, rel := dir.fd, name
	if at < 0 {
		at, rel = unix.AT_FDCWD, path
	}
	for {
		fd, err := unix.Openat(at, rel, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return rawFile(fd), nil
	}
}

type rawFile int

func (f rawFile) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(int(f), p)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFile) Close() error { return syscall.Close(int(f)) }

// countEntries counts the entries of the folder dir (but . and ..) from
// its raw listing, copying no name out; an unreadable folder counts as
// one, as Scan reports it.
func countEntries(dir string) int64 {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 1
	}
	defer syscall.Close(fd)
	var n int64
	buf := make([]byte, 64<<10)
	for {
		got, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n + 1
		}
		if got <= 0 {
			return n
		}
		// Each record (struct linux_dirent64): d_ino 8, d_off 8,
		// d_reclen 2, d_type 1, then the name, NUL-terminated.
		for b := buf[:got]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 22 || reclen > len(b) {
				break // records are 8-byte aligned: at least 24 bytes
			}
			if name := b[19:reclen]; !(name[0] == '.' && (name[1] == 0 || name[1] == '.' && name[2] == 0)) {
				n++
			}
			b = b[reclen:]
		}
	}
}
