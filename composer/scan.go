package composer

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

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

// InContent reports whether r is found only by reading the entry's
// content (a malformed map): an update that does not read maps
// (UpdateConfig.CheckRefs unset) stamps such an entry as an object.
func (r Reason) InContent() bool { return r == BadMap }

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

// DefaultWorkers is how many goroutines classify entries at once by
// default: twice the CPUs Go may use, at least 2 and at most 16. The work
// is mostly system calls (open, read, access, lstat), which on a cold or
// remote file system wait more than they compute.
func DefaultWorkers() int { return min(max(2*runtime.GOMAXPROCS(0), 2), 16) }

// ScanOption tunes Scan.
type ScanOption func(*scanOpts)

type scanOpts struct {
	chunk   int
	workers int
	noRefs  bool
}

// WithChunk sets how many directory entries are read per call.
func WithChunk(n int) ScanOption { return func(o *scanOpts) { o.chunk = n } }

// WithWorkers sets how many goroutines classify entries (1: one entry at a
// time, while the caller's goroutine reads ahead); default DefaultWorkers.
func WithWorkers(n int) ScanOption { return func(o *scanOpts) { o.workers = n } }

// WithoutRefs skips reading map files: maps are classified by name only
// and their Refs are not filled in.
func WithoutRefs() ScanOption { return func(o *scanOpts) { o.noRefs = true } }

// Scan walks scope's folder and calls fn for every entry, valid or not, in
// directory order. Folders are read a chunk (DefaultChunk entries) at a
// time and each chunk is classified by one of a few workers (WithWorkers)
// while the next ones are read; fn is called from the calling goroutine
// only, one entry at a time, and at most two chunks per worker are held,
// so memory does not grow with the folders' size. A folder that cannot be
// read is reported as one Unreadable entry and the walk goes on. It
// returns ErrNoScopeDir when the folder is absent, fn's error, or ctx's
// error when cancelled (checked between chunks).
func (l Layout) Scan(ctx context.Context, scope libmap.Scope, fn func(Entry) error, opts ...ScanOption) error {
	o := scanOpts{chunk: DefaultChunk, workers: DefaultWorkers()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.chunk <= 0 {
		o.chunk = DefaultChunk
	}
	if o.workers <= 0 {
		o.workers = DefaultWorkers()
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
	s := newScanner(l, scope, fn, o)
	err = s.walk(ctx, dir)
	if err == nil {
		err = s.deliver(ctx, 0)
	}
	s.stop()
	return err
}

func (s *scanner) walk(ctx context.Context, dir string) error {
	if s.scope.Nodelocal() {
		return s.objects(ctx, dir, "")
	}
	// Content-addressed: a fan-out of <hh> folders.
	return s.readDir(ctx, dir, func(ents []fs.DirEntry) error {
		for _, d := range ents {
			p := filepath.Join(dir, d.Name())
			var err error
			switch {
			case isTemp(d.Name()):
				err = s.emit(ctx, Entry{Scope: s.scope, Path: p, Bad: Temporary})
			case d.Type()&fs.ModeSymlink != 0:
				err = s.emit(ctx, Entry{Scope: s.scope, Path: p, Bad: Symlink})
			case !d.IsDir():
				err = s.emit(ctx, Entry{Scope: s.scope, Path: p, Bad: FileForDir})
			case !isHH(d.Name()):
				err = s.emit(ctx, Entry{Scope: s.scope, Path: p, Bad: BadName})
			default:
				err = s.objects(ctx, p, d.Name())
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Count counts the entries of scope's folder where objects belong (valid
// or not), as Scan would deliver them, without classifying them: a quick
// pass for a progress total. Object folders are counted from their raw
// listing (no name is copied out, nothing is looked at), so the pass costs
// a small part of the scan it announces.
func (l Layout) Count(ctx context.Context, scope libmap.Scope) (int64, error) {
	if err := CheckRoot(l.Root(scope)); err != nil {
		return 0, err
	}
	dir := l.Dir(scope)
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil || !fi.IsDir():
		return 1, nil // Scan reports the folder itself, once
	case scope.Nodelocal():
		return countEntries(dir), nil
	}
	// Content-addressed: the fan-out folders' entries, and one for each
	// other entry beside them (Scan reports each as bad).
	f, err := openDir(dir)
	if err != nil {
		return 1, nil
	}
	defer f.Close()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		ents, err := f.ReadDir(DefaultChunk)
		for _, d := range ents {
			if isHH(d.Name()) && d.IsDir() {
				n += countEntries(filepath.Join(dir, d.Name()))
			} else {
				n++
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			return n, nil
		}
		if err != nil {
			return n + 1, nil // Scan reports the unreadable rest once
		}
	}
}

// A chunk is a slice of a folder's entries, classified by a worker, or one
// entry the walk itself classified (a bad fan-out folder, an unreadable
// folder): chunks are delivered to fn in the order the walk made them.
type chunk struct {
	dir, hh string
	ents    []fs.DirEntry
	out     []Entry
	done    chan struct{}
}

type scanner struct {
	l     Layout
	scope libmap.Scope
	fn    func(Entry) error
	o     scanOpts

	jobs    chan *chunk
	queue   []*chunk // made, not yet delivered, oldest first
	stopped chan struct{}
	wg      sync.WaitGroup

	// The chock folders a map's references are looked up in, when the
	// scope is a map's and its refs are read.
	chocks map[libmap.Scope]heldDir
}

func newScanner(l Layout, scope libmap.Scope, fn func(Entry) error, o scanOpts) *scanner {
	s := &scanner{l: l, scope: scope, fn: fn, o: o, jobs: make(chan *chunk, 2*o.workers), stopped: make(chan struct{})}
	if scope.IsMap() && !o.noRefs {
		s.chocks = map[libmap.Scope]heldDir{}
		for _, sc := range []libmap.Scope{libmap.ChocksIdx, libmap.ChocksCA} {
			if l.Root(sc) != "" {
				s.chocks[sc] = openHeldDir(l.Dir(sc))
			}
		}
	}
	for i := 0; i < o.workers; i++ {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

// work classifies chunks until the scan stops; a chunk taken after an
// early stop is left empty (nobody will deliver it).
func (s *scanner) work() {
	defer s.wg.Done()
	var buf []byte // map files are read into it, one after another
	for c := range s.jobs {
		select {
		case <-s.stopped:
		default:
			c.out = make([]Entry, 0, len(c.ents))
			dir := openHeldDir(c.dir)
			for _, d := range c.ents {
				// c.dir is clean and a listed name has no slash: the join
				// needs no filepath.Join (and its Clean), run for every entry.
				c.out = append(c.out, s.classify(dir, c.dir+"/"+d.Name(), d, c.hh, &buf))
			}
			dir.close()
			if cap(buf) > 1<<20 {
				buf = nil // a huge map: do not hold its size for the rest
			}
		}
		close(c.done)
	}
}

// stop ends the workers and waits for them.
func (s *scanner) stop() {
	close(s.stopped)
	close(s.jobs)
	s.wg.Wait()
	for _, c := range s.chocks {
		c.close()
	}
}

// submit queues a chunk of dir's entries for the workers; emit queues one
// entry already classified. Both deliver the oldest chunks once more than
// two per worker wait, which bounds memory and lets fn's error or ctx stop
// the walk.
func (s *scanner) submit(ctx context.Context, dir, hh string, ents []fs.DirEntry) error {
	c := &chunk{dir: dir, hh: hh, ents: ents, done: make(chan struct{})}
	s.queue = append(s.queue, c)
	s.jobs <- c // never blocks: at most cap(jobs) chunks are undelivered
	return s.deliver(ctx, cap(s.jobs)-1)
}

func (s *scanner) emit(ctx context.Context, e Entry) error {
	c := &chunk{out: []Entry{e}, done: make(chan struct{})}
	close(c.done)
	s.queue = append(s.queue, c)
	return s.deliver(ctx, cap(s.jobs)-1)
}

// deliver passes the oldest chunks' entries to fn until at most keep
// chunks are left.
func (s *scanner) deliver(ctx context.Context, keep int) error {
	for len(s.queue) > keep {
		c := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		<-c.done
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, e := range c.out {
			if err := s.fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDir calls visit with dir's entries, a chunk at a time; an
// unreadable dir is reported, not fatal.
func (s *scanner) readDir(ctx context.Context, dir string, visit func([]fs.DirEntry) error) error {
	f, err := openDir(dir)
	if err != nil {
		return s.emit(ctx, Entry{Scope: s.scope, Path: dir, Bad: Unreadable, Err: err})
	}
	defer f.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := f.ReadDir(s.o.chunk)
		if len(ents) > 0 {
			if verr := visit(ents); verr != nil {
				return verr
			}
		}
		if err == io.EOF || (err == nil && len(ents) == 0) {
			return nil
		}
		if err != nil {
			return s.emit(ctx, Entry{Scope: s.scope, Path: dir, Bad: Unreadable, Err: err})
		}
	}
}

// objects classifies the entries of a folder where object files belong;
// hh is the fan-out folder's name for content-addressed scopes.
func (s *scanner) objects(ctx context.Context, dir, hh string) error {
	return s.readDir(ctx, dir, func(ents []fs.DirEntry) error {
		return s.submit(ctx, dir, hh, ents)
	})
}

// classify runs on the workers. The entry's type comes from the folder
// listing (getdents' d_type; Go lstats only where the file system gives
// none), so a valid name costs one system call for a chock (access: an
// unreadable chock must not be stamped, and the listing does not tell)
// and, for a map, the open and reads of its file, whose failure is what
// makes it unreadable, plus a look-up per chock it names.
func (s *scanner) classify(dir heldDir, path string, d fs.DirEntry, hh string, buf *[]byte) Entry {
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
	if e.Bad != "" {
		return e
	}
	if s.scope.IsMap() && !s.o.noRefs {
		refs, err := readMap(dir, name, path, buf)
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
	} else if err := canRead(dir, name, path); err != nil {
		e.Bad, e.Err = Unreadable, &fs.PathError{Op: "access", Path: path, Err: err}
		return e
	}
	e.Name = name
	return e
}

// missing returns the refs whose chock file is absent, where its root is
// known.
func (s *scanner) missing(refs []Ref) []Ref {
	var out []Ref
	for _, r := range refs {
		dir, ok := s.chocks[r.Scope]
		if !ok {
			continue
		}
		rel := r.Name
		if !r.Scope.Nodelocal() {
			rel = r.Name[:2] + "/" + r.Name
		}
		if dir.absent(rel) {
			out = append(out, r)
		}
	}
	return out
}

func absentPath(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// openDir, canRead and openFile are variables so that tests running as
// root, whom permissions do not stop, can still make a folder or file
// unreadable.
var (
	openDir  = os.Open
	canRead  = canReadAt
	openFile = openRawAt
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
