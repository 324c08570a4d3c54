package rehearse

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// lockHeld reports whether another process locks path the way etcd does:
// bbolt flocks member/snap/db, and etcd's WAL takes an open file
// description lock (F_OFD_SETLK, flock where that is missing) on its WAL
// files. The probe takes no lock that outlives it and writes nothing.
func lockHeld(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fd := int(f.Fd())
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err == nil && lk.Type != unix.F_UNLCK {
		return true, nil
	}
	switch err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, nil
	case err != nil:
		return false, err
	}
	return false, unix.Flock(fd, unix.LOCK_UN)
}
