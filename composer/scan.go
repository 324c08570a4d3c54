package composer

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/rokup/rokup/libmap"
)

// Reason says why an entry found in a scope folder is not a valid object.
type Reason string

// The classifier's reasons.
const (
	Temporary  Reason = "temporary file"
	BadName    Reason = "bad name"
	HashFolder Reason = "hash does not match its folder"
	Symlink    Reason = "symbolic link"
	Unreadable Reason = "unreadable"
	DirForFile Reason = "directory where a file belongs"
	FileForDir Reason = "file where a folder belongs"
	NotRegular Reason = "not a regular file"
	BadMap     Reason = "malformed map"
)

// Entry is one thing the scanner found: a valid object (Bad is empty) or
// an invalid entry with its reason.
type Entry struct {
	Scope libmap.Scope
	Name  string // the object's name (uuid, index, hash); empty when Bad
	Path  string
	Bad   Reason
	Err   error // detail of Bad, when there is one (e.g. permission denied)
	// Refs are a map's references; Missing those whose chock is not on
	// storage (checked when the chock's root is known). A map with missing
	// chocks is still a valid object.
	Refs    []Ref
	Missing []Ref
}

// Valid reports whether e is an object that may be stamped.
func (e Entry) Valid() bool { return e.Bad == "" }

// DefaultChunk is how many directory entries are read at a time.
const DefaultChunk = 1024

// ScanOption tunes Scan.
type ScanOption func(*scanOpts)

type scanOpts struct {
	chunk    int
	noRefs   bool
	noAccess bool
}

// WithChunk sets how many directory entries are read per call.
func WithChunk(n int) ScanOption { return func(o *scanOpts) { o.chunk = n } }

// WithoutRefs skips reading map files: maps are classified by name only
// and their Refs are not filled in.
func WithoutRefs() ScanOption { return func(o *scanOpts) { o.noRefs = true } }

// Scan walks scope's folder and calls fn for every entry, valid or not, in
// directory order. Folders are read DefaultChunk entries at a time, so
// memory does not grow with their size. A folder that cannot be read is
// reported as one Unreadable entry and the walk goes on. It returns
// ErrNoScopeDir when the folder is absent, fn's error, or ctx's error when
// cancelled (checked between chunks).
func (l Layout) Scan(ctx context.Context, scope libmap.Scope, fn func(Entry) error, opts ...ScanOption) error {
	o := scanOpts{chunk: DefaultChunk}
	for _, opt := range opts {
		opt(&o)
	}
	if o.chunk <= 0 {
		o.chunk = DefaultChunk
	}
	if err := CheckRoot(l.Root(scope)); err != nil {
		return err
	}
	dir := l.Dir(scope)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoScopeDir
	}
	if err != nil {
		return fn(Entry{Scope: scope, Path: dir, Bad: Unreadable, Err: err})
	}
	if !fi.IsDir() {
		return fn(Entry{Scope: scope, Path: dir, Bad: FileForDir})
	}
	s := scanner{l: l, scope: scope, fn: fn, o: o}
	if scope.Nodelocal() {
		return s.objects(ctx, dir, "")
	}
	// Content-addressed: a fan-out of <hh> folders.
	return s.readDir(ctx, dir, func(d fs.DirEntry) error {
		p := filepath.Join(dir, d.Name())
		switch {
		case isTemp(d.Name()):
			return fn(Entry{Scope: scope, Path: p, Bad: Temporary})
		case d.Type()&fs.ModeSymlink != 0:
			return fn(Entry{Scope: scope, Path: p, Bad: Symlink})
		case !d.IsDir():
			return fn(Entry{Scope: scope, Path: p, Bad: FileForDir})
		case !isHH(d.Name()):
			return fn(Entry{Scope: scope, Path: p, Bad: BadName})
		}
		return s.objects(ctx, p, d.Name())
	})
}

// Count counts the entries of scope's folder where objects belong (valid
// or not) without classifying them: a quick pass for a progress total.
func (l Layout) Count(ctx context.Context, scope libmap.Scope) (int64, error) {
	var n int64
	err := l.Scan(ctx, scope, func(Entry) error { n++; return nil }, WithoutRefs(), func(o *scanOpts) { o.noAccess = true })
	if errors.Is(err, ErrNoScopeDir) {
		return 0, nil
	}
	return n, err
}

type scanner struct {
	l     Layout
	scope libmap.Scope
	fn    func(Entry) error
	o     scanOpts
}

// readDir calls visit for each entry of dir, a chunk at a time; an
// unreadable dir is reported, not fatal.
func (s *scanner) readDir(ctx context.Context, dir string, visit func(fs.DirEntry) error) error {
	f, err := openDir(dir)
	if err != nil {
		return s.fn(Entry{Scope: s.scope, Path: dir, Bad: Unreadable, Err: err})
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := f.ReadDir(s.o.chunk)
		for _, d := range ents {
			if verr := visit(d); verr != nil {
				return verr
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			return nil
		}
		if err != nil {
			return s.fn(Entry{Scope: s.scope, Path: dir, Bad: Unreadable, Err: err})
		}
	}
}

// objects classifies the entries of a folder where object files belong;
// hh is the fan-out folder's name for content-addressed scopes.
func (s *scanner) objects(ctx context.Context, dir, hh string) error {
	return s.readDir(ctx, dir, func(d fs.DirEntry) error {
		return s.fn(s.classify(filepath.Join(dir, d.Name()), d, hh))
	})
}

func (s *scanner) classify(path string, d fs.DirEntry, hh string) Entry {
	name := d.Name()
	e := Entry{Scope: s.scope, Path: path}
	switch {
	case isTemp(name):
		e.Bad = Temporary
	case d.Type()&fs.ModeSymlink != 0:
		e.Bad = Symlink
	case d.IsDir():
		e.Bad = DirForFile
	case !d.Type().IsRegular():
		e.Bad = NotRegular
	case !ValidName(s.scope, name):
		e.Bad = BadName
	case hh != "" && !strings.HasPrefix(name, hh):
		e.Bad = HashFolder
	}
	if e.Bad != "" || s.o.noAccess {
		if e.Bad == "" {
			e.Name = name
		}
		return e
	}
	if err := canRead(path); err != nil {
		e.Bad, e.Err = Unreadable, &fs.PathError{Op: "access", Path: path, Err: err}
		return e
	}
	if s.scope.IsMap() && !s.o.noRefs {
		refs, err := ReadMap(path)
		switch {
		case errors.Is(err, ErrBadRef):
			e.Bad, e.Err = BadMap, err
			return e
		case err != nil:
			e.Bad, e.Err = Unreadable, err
			return e
		}
		e.Refs = refs
		e.Missing = s.missing(refs)
	}
	e.Name = name
	return e
}

// missing returns the refs whose chock file is absent, where its root is
// known.
func (s *scanner) missing(refs []Ref) []Ref {
	var out []Ref
	for _, r := range refs {
		if s.l.Root(r.Scope) == "" {
			continue
		}
		if _, err := os.Lstat(s.l.Path(r.Scope, r.Name)); errors.Is(err, fs.ErrNotExist) {
			out = append(out, r)
		}
	}
	return out
}

// openDir and canRead are variables so that tests running as root, whom
// permissions do not stop, can still make a folder or file unreadable.
var (
	openDir = os.Open
	canRead = func(path string) error { return syscall.Access(path, 4 /* R_OK */) }
)

// isTemp recognises the names writers use for files in progress.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "tmp") ||
		strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part") ||
		strings.HasSuffix(name, "~") || strings.Contains(name, ".tmp.")
}

// Tally counts what a scan found.
type Tally struct {
	Objects     int64            `json:"objects"`
	Skipped     map[Reason]int64 `json:"skipped"`
	MissingRefs int64            `json:"missing_refs"` // references to absent chocks
	MapsMissing int64            `json:"maps_with_missing_chocks"`
}

// Add counts e.
func (t *Tally) Add(e Entry) {
	if t.Skipped == nil {
		t.Skipped = map[Reason]int64{}
	}
	if !e.Valid() {
		t.Skipped[e.Bad]++
		return
	}
	t.Objects++
	if len(e.Missing) > 0 {
		t.MapsMissing++
		t.MissingRefs += int64(len(e.Missing))
	}
}

// SkippedTotal is the number of invalid entries.
func (t Tally) SkippedTotal() int64 {
	var n int64
	for _, c := range t.Skipped {
		n += c
	}
	return n
}

// Reasons lists the reasons seen, sorted, for reports.
func (t Tally) Reasons() []Reason {
	var rs []Reason
	for r := range t.Skipped {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
	return rs
}
