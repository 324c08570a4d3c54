package rehearse

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrNotDataDir is returned for a directory that is not an etcd
	// member's data directory (no member/wal with WAL files).
	ErrNotDataDir = errors.New("rehearse: not an etcd data directory")
	// ErrEmptyDir is returned for an empty directory.
	ErrEmptyDir = errors.New("rehearse: data directory is empty")
	// ErrLocked is returned when a running etcd holds the data directory.
	ErrLocked = errors.New("rehearse: data directory in use by a running etcd")
)

// CheckDataDir tells whether dir is an etcd member's data directory that
// no running etcd holds: dir/member/wal holds WAL files and dir/member/snap
// exists. It only reads dir (and probes its locks).
func CheckDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("rehearse: data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrNotDataDir, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("rehearse: data directory: %w", err)
	}
	if len(entries) == 0 {
		return fmt.Errorf("%w: %s holds nothing; give a copy of a member's --data-dir (it holds member/wal and member/snap)", ErrEmptyDir, dir)
	}
	wals, _ := filepath.Glob(filepath.Join(dir, "member", "wal", "*.wal"))
	if len(wals) == 0 {
		if w, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal")); len(w) > 0 {
			return fmt.Errorf("%w: %s looks like the member directory itself; give its parent, the member's --data-dir", ErrNotDataDir, dir)
		}
		return fmt.Errorf("%w: %s has no member/wal/*.wal; give a copy of a member's --data-dir or the output of ETCDCTL_API=2 etcdctl backup", ErrNotDataDir, dir)
	}
	if fi, err := os.Stat(filepath.Join(dir, "member", "snap")); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: %s has WAL files but no member/snap directory", ErrNotDataDir, dir)
	}
	locked := append([]string{filepath.Join(dir, "member", "snap", "db")}, wals...)
	for _, f := range locked {
		held, err := lockHeld(f)
		if err != nil {
			return fmt.Errorf("rehearse: probe lock of %s: %w", f, err)
		}
		if held {
			return fmt.Errorf("%w: %s is locked; stop that member, or rehearse a copy of its data directory (or of ETCDCTL_API=2 etcdctl backup)", ErrLocked, f)
		}
	}
	return nil
}

// copyDataDir copies src/member into dst/member: all etcd reads of a data
// directory. src is only read.
func copyDataDir(src, dst string) (files int, bytes int64, err error) {
	from := filepath.Join(src, "member")
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case info.Mode().IsRegular():
			n, err := copyFile(p, to)
			files++
			bytes += n
			return err
		default:
			return fmt.Errorf("%s is not a regular file or directory (%s)", p, info.Mode().Type())
		}
	})
	if err != nil {
		return files, bytes, fmt.Errorf("rehearse: copy %s to %s: %w", src, dst, err)
	}
	return files, bytes, nil
}

func copyFile(from, to string) (int64, error) {
	in, err := os.Open(from)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// within reports whether p is dir or lies under it.
func within(p, dir string) bool {
	p, dir = absClean(p), absClean(dir)
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

func absClean(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return filepath.Clean(p)
}
