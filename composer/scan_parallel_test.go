package composer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rokup/rokup/libmap"
)

// entries lists what a scan hands fn, in order, as one line each.
func entries(t *testing.T, l Layout, scope libmap.Scope, opts ...ScanOption) []string {
	t.Helper()
	var out []string
	err := l.Scan(context.Background(), scope, func(e Entry) error {
		out = append(out, fmt.Sprintf("%s %q %s %v missing=%v", e.Path, e.Name, e.Bad, len(e.Refs), e.Missing))
		return nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Workers classify chunks in parallel, yet fn sees what one goroutine
// walking the folders would show it, in the same order, one call at a time
// (the race detector watches the unguarded append in entries).
func TestScanWorkersKeepDirectoryOrder(t *testing.T) {
	l := tree(t)
	for i := 0; i < 300; i++ {
		write(t, l.Path(libmap.ChocksIdx, fmt.Sprint(1000+i)), "")
		write(t, l.Path(libmap.ChocksCA, hash(fmt.Sprint(i))), "")
		write(t, l.Path(libmap.MapsUUID, fmt.Sprintf("00000000-0000-4000-8000-%012d", i)), fmt.Sprintf("chocks-idx/%d\nchocks-idx/%d\n", 1000+i, 5000+i))
	}
	for _, sc := range libmap.Scopes() {
		one := entries(t, l, sc, WithWorkers(1), WithChunk(7))
		for _, w := range []int{2, 5} {
			many := entries(t, l, sc, WithWorkers(w), WithChunk(7))
			if fmt.Sprint(many) != fmt.Sprint(one) {
				t.Fatalf("%s: %d workers showed\n%v\none showed\n%v", sc, w, many, one)
			}
		}
	}
}

// fn's error ends the scan: no entry reaches fn after it.
func TestScanStopsAtFnError(t *testing.T) {
	l := tree(t)
	for i := 0; i < 200; i++ {
		write(t, l.Path(libmap.ChocksIdx, fmt.Sprint(1000+i)), "")
	}
	stop := errors.New("enough")
	n := 0
	err := l.Scan(context.Background(), libmap.ChocksIdx, func(Entry) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	}, WithChunk(2), WithWorkers(4))
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("fn failed at its 3rd entry: %d entries, %v", n, err)
	}
}

// A map is read anyway, so a map that cannot be opened is Unreadable with
// the open's error, and is not stamped; the other maps are.
func TestScanReportsUnreadableMap(t *testing.T) {
	l := tree(t)
	bad := l.Path(libmap.MapsUUID, "7c9e6679-7425-40de-944b-e07fc1f90ae7")
	openFile = func(dir heldDir, name, p string) (io.ReadCloser, error) {
		if p == bad {
			return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		return openRawAt(dir, name, p)
	}
	t.Cleanup(func() { openFile = openRawAt })
	tally, names, badEntries := scanAll(t, l, libmap.MapsUUID)
	if tally.Skipped[Unreadable] != 1 || len(names) != 1 || names[0] != "0f8fad5b-d9cb-469f-a165-70867728950e" {
		t.Fatalf("unreadable %d, valid %v", tally.Skipped[Unreadable], names)
	}
	for _, e := range badEntries {
		if e.Bad == Unreadable && (e.Path != bad || !errors.Is(e.Err, syscall.EACCES)) {
			t.Fatalf("unreadable entry %s: %v", e.Path, e.Err)
		}
	}
}

// A map's chocks are looked up as lstat would: a link to nothing is there,
// and with no chock folder at all every chock is missing.
func TestScanMissingChocksLookup(t *testing.T) {
	l := tree(t)
	if err := os.Symlink("/nonexistent", l.Path(libmap.ChocksIdx, "99")); err != nil {
		t.Fatal(err)
	}
	var missing []string
	scan := func(l Layout) {
		missing = nil
		err := l.Scan(context.Background(), libmap.MapsUUID, func(e Entry) error {
			for _, r := range e.Missing {
				missing = append(missing, r.String())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	scan(l)
	if len(missing) != 0 {
		t.Fatalf("a dangling link counted as a missing chock: %v", missing)
	}
	if err := os.RemoveAll(filepath.Join(l.Nodelocal, "chocks-idx")); err != nil {
		t.Fatal(err)
	}
	scan(l)
	if fmt.Sprint(missing) != "[chocks-idx/0 chocks-idx/1 chocks-idx/4 chocks-idx/3 chocks-idx/99]" && fmt.Sprint(missing) != "[chocks-idx/3 chocks-idx/99 chocks-idx/0 chocks-idx/1 chocks-idx/4]" {
		t.Fatalf("no chock folder: missing %v, want every chock the maps name", missing)
	}
}

// The scanner reads a map whole and parses its bytes: it finds what
// ParseMap finds in the same file, on inputs good and bad, small and
// larger than any buffer it starts with.
func TestReadMapAgreesWithParseMap(t *testing.T) {
	h := hash("x")
	var big strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&big, "chocks-idx/%d\r\n  chocks-ca/%s\n\n", i, h)
	}
	inputs := []string{
		"", "\n\n", "chocks-idx/1", "chocks-idx/1\n", " chocks-idx/1 \r\n\tchocks-ca/" + h + "\n",
		"chocks-idx/1\nchocks-idx/01\n", "chocks-idx/1\n\nnot a ref\n", "chocks-ca/" + strings.ToUpper(h), big.String(), big.String() + "chocks-idx/x\n",
	}
	dir := t.TempDir()
	var buf []byte
	for i, in := range inputs {
		p := filepath.Join(dir, fmt.Sprint(i))
		write(t, p, in)
		want, wantErr := ParseMap(strings.NewReader(in))
		got, err := readMap(noDir, "", p, &buf)
		if fmt.Sprint(got) != fmt.Sprint(want) || (err == nil) != (wantErr == nil) || errors.Is(err, ErrBadRef) != errors.Is(wantErr, ErrBadRef) {
			t.Fatalf("input %d: read %d refs, %v; ParseMap %d refs, %v", i, len(got), err, len(want), wantErr)
		}
		if err != nil && (!strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), strings.TrimPrefix(wantErr.Error(), ""))) {
			t.Fatalf("input %d: %v does not name the file and the line as %v does", i, err, wantErr)
		}
	}
}

// A FIFO that took a map's place since the listing does not block the
// scan (os.Open would wait for a writer forever): with no writer it reads
// as empty.
func TestReadMapDoesNotBlockOnAFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip("no FIFO here:", err)
	}
	var buf []byte
	if refs, err := readMap(noDir, "", p, &buf); err != nil || len(refs) != 0 {
		t.Fatalf("FIFO: %v %v", refs, err)
	}
}
