package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

// AsideDir is the folder, at the top of a storage root, where a GC moves
// the files it is about to collect: <root>/.rokup-gc/<lease>/<scope>/<name>,
// one folder per GC instance, named by its lease in hex. Nothing else
// writes there, and the scanner never looks there.
const AsideDir = ".rokup-gc"

// asideScopeDir is where the instance on lease sets aside the objects of
// scope, under root.
func asideScopeDir(root string, lease clientv3.LeaseID, scope libmap.Scope) string {
	return filepath.Join(root, AsideDir, leaseName(lease), string(scope))
}

func leaseName(lease clientv3.LeaseID) string { return fmt.Sprintf("%016x", int64(lease)) }

// tombs is the folder where one GC instance sets aside the files of one
// scope, opened once: every collected object is renamed into it and
// removed from it, so both go relative to its descriptor (renameat,
// unlinkat) rather than walking its whole path twice, and without the
// extra lstat os.Rename makes of the target. A sweep pays these two calls
// per object; they are most of what the window's protocol costs.
type tombs struct {
	dir string // <root>/.rokup-gc/<lease>/<scope>

	mu sync.Mutex
	fd int // -1 until first used
}

func newTombs(dir string) *tombs { return &tombs{dir: dir, fd: -1} }

// path is where the object name sits while set aside.
func (t *tombs) path(name string) string { return filepath.Join(t.dir, name) }

// open returns the folder's descriptor, making the folder on first use.
// stale is a descriptor found not to work (the folder was removed under
// us: our lease expired and a recovery cleaned up): it is replaced.
func (t *tombs) open(stale int) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fd >= 0 && t.fd != stale {
		return t.fd, nil
	}
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return -1, err
	}
	fd, err := unix.Open(t.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: t.dir, Err: err}
	}
	t.fd = fd
	return fd, nil
}

func (t *tombs) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
}

// setAside moves the file at path into the folder as name. vanished is
// true when there was no file to move (it went before the GC got to it).
func (t *tombs) setAside(path, name string) (vanished bool, err error) {
	fd, err := t.open(-1)
	for try := 0; err == nil; try++ {
		err = ignoringEINTR(func() error { return unix.Renameat(unix.AT_FDCWD, path, fd, name) })
		if !errors.Is(err, unix.ENOENT) {
			break
		}
		if _, serr := os.Lstat(path); errors.Is(serr, fs.ErrNotExist) {
			return true, nil
		}
		if try > 0 {
			break
		}
		fd, err = t.open(fd) // our folder is gone: make it again, once
	}
	if err != nil {
		return false, fmt.Errorf("set aside %s: %w", path, &os.LinkError{Op: "rename", Old: path, New: t.path(name), Err: err})
	}
	return false, nil
}

// remove removes the file set aside as name, and tells its size.
func (t *tombs) remove(name string) (size int64, err error) {
	fd, err := t.open(-1)
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if ignoringEINTR(func() error { return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }) == nil {
		size = st.Size
	}
	if err := ignoringEINTR(func() error { return unix.Unlinkat(fd, name, 0) }); err != nil {
		return 0, &os.PathError{Op: "remove", Path: t.path(name), Err: err}
	}
	return size, nil
}

// ignoringEINTR retries a system call interrupted by a signal (the Go
// runtime's own preemption signals among them), as package os does.
func ignoringEINTR(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}

// putBack moves a file set aside back to path, unless a file is at path
// already: that one was written since (a composer told "missing" wrote
// it) and wins, and the one set aside is removed. It never replaces a file
// (renameat2 RENAME_NOREPLACE, or link then unlink where that is not
// supported), so it can never undo a composer's write.
func putBack(tomb, path string) (restored bool, err error) {
	gone, err := moveFile(renameNoReplace, tomb, path)
	switch {
	case gone:
		return false, nil // put back (or found superseded) by someone else
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		if err := os.Remove(tomb); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("remove %s (superseded by %s): %w", tomb, path, err)
		}
		return false, nil
	}
	return false, fmt.Errorf("put back %s to %s: %w", tomb, path, err)
}

// moveFile moves old to new with rename (putBack's no-replace rename;
// the mutant suite swaps in a plain one). When that fails because a folder
// is missing, gone tells whether it is old itself (moved or removed by
// someone else); otherwise new's folder is made (a fan-out folder removed
// by hand) and the rename tried again.
func moveFile(rename func(old, new string) error, old, new string) (gone bool, err error) {
	err = rename(old, new)
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if _, serr := os.Lstat(old); errors.Is(serr, fs.ErrNotExist) {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(new), 0o755); err != nil {
		return false, err
	}
	return false, rename(old, new)
}

// Recovered is what Recover did.
type Recovered struct {
	// Restored files were put back where they belong; Superseded ones were
	// removed because a newer file had been written there since.
	Restored   int64 `json:"restored"`
	Superseded int64 `json:"superseded"`
	// Held are files set aside by a GC still running (its lease alive):
	// left to it.
	Held int64 `json:"held"`
	// Errors lists what could not be put back, with where the file is.
	Errors []string `json:"errors,omitempty"`
}

// Recover puts back every file that a GC which is no longer running set
// aside under the roots: a GC killed (or whose lease expired) between
// moving a file aside and finishing its deletion. The GC's own lease, skip,
// is left alone, and so is any other instance whose lease is still alive.
//
// It always puts back, never deletes, whether or not the dead GC's
// deletion committed: it cannot tell, and a file without an epoch key is
// harmless (the next GC stamps it and a later one collects it), while a
// file removed under a live epoch key is data lost. Every GC runs it before
// its mark, and the sidecar at start and periodically. Cancelling ctx stops
// it between files.
func Recover(ctx context.Context, cli *clientv3.Client, roots []string, skip clientv3.LeaseID) (Recovered, error) {
	var rec Recovered
	for _, root := range roots {
		if root == "" {
			continue
		}
		top := filepath.Join(root, AsideDir)
		leases, err := os.ReadDir(top)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return rec, fmt.Errorf("gc: recover %s: %w", top, err)
		}
		for _, l := range leases {
			id, err := strconv.ParseInt(l.Name(), 16, 64)
			if err != nil || !l.IsDir() {
				rec.Errors = append(rec.Errors, fmt.Sprintf("%s: not a GC instance's folder (left alone)", filepath.Join(top, l.Name())))
				continue
			}
			lease := clientv3.LeaseID(id)
			if lease == skip {
				continue
			}
			dir := filepath.Join(top, l.Name())
			alive, err := leaseAlive(ctx, cli, lease)
			if err != nil {
				return rec, fmt.Errorf("gc: recover %s: %w", dir, err)
			}
			if alive {
				n, _ := countFiles(dir)
				rec.Held += n
				continue
			}
			if err := recoverInstance(ctx, root, dir, &rec); err != nil {
				return rec, err
			}
		}
	}
	return rec, nil
}

// leaseAlive asks etcd whether lease still exists (TimeToLive answers a
// TTL of -1 for an expired or revoked one).
func leaseAlive(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID) (bool, error) {
	resp, err := cli.TimeToLive(ctx, lease)
	if err != nil {
		return false, fmt.Errorf("read lease %x: %w", int64(lease), err)
	}
	return resp.TTL > 0, nil
}

// recoverInstance puts back every file of one dead instance's folder, then
// removes the folder if nothing is left in it.
func recoverInstance(ctx context.Context, root, dir string, rec *Recovered) error {
	layout := composer.Layout{Nodelocal: root, Local: root}
	scopes, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("gc: recover %s: %w", dir, err)
	}
	for _, s := range scopes {
		scope, err := libmap.ParseScope(s.Name())
		sdir := filepath.Join(dir, s.Name())
		if err != nil || !s.IsDir() {
			rec.Errors = append(rec.Errors, fmt.Sprintf("%s: not a scope folder (left alone)", sdir))
			continue
		}
		files, err := os.ReadDir(sdir)
		if err != nil {
			return fmt.Errorf("gc: recover %s: %w", sdir, err)
		}
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			tomb := filepath.Join(sdir, f.Name())
			if !composer.ValidName(scope, f.Name()) {
				rec.Errors = append(rec.Errors, fmt.Sprintf("%s: not an object name (left alone)", tomb))
				continue
			}
			restored, err := putBack(tomb, layout.Path(scope, f.Name()))
			switch {
			case err != nil:
				rec.Errors = append(rec.Errors, err.Error())
			case restored:
				rec.Restored++
			default:
				rec.Superseded++
			}
		}
		os.Remove(sdir) // only if empty
	}
	os.Remove(dir) // only if empty
	return nil
}

// AsideFiles counts the files set aside under root, by any GC instance:
// after every GC has finished or been recovered, there are none.
func AsideFiles(root string) int64 {
	n, _ := countFiles(filepath.Join(root, AsideDir))
	return n
}

func countFiles(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n, err
}

// linkThenRemove is a no-replace rename made of link(2), which fails when
// new exists, and unlink(2).
func linkThenRemove(old, new string) error {
	if err := os.Link(old, new); err != nil {
		return err
	}
	return os.Remove(old)
}

// removeAsideDir removes this instance's aside folder, which every
// finished deletion has left empty (os.Remove removes empty folders only).
func (g *run) removeAsideDir() {
	dir := filepath.Join(g.root(), AsideDir, leaseName(g.inst.Lease()))
	for _, t := range g.tombs {
		t.close()
		os.Remove(t.dir)
	}
	os.Remove(dir)
	os.Remove(filepath.Join(g.root(), AsideDir))
}
