package composer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/rokup/rokup/libmap"
)

func hash(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree builds a node's storage with valid objects and one bad entry of each
// kind the classifier knows.
func tree(t *testing.T) Layout {
	dir := t.TempDir()
	l := Layout{Nodelocal: filepath.Join(dir, "nodelocal"), Local: filepath.Join(dir, "local")}
	for i := 0; i < 5; i++ {
		write(t, l.Path(libmap.ChocksIdx, fmt.Sprint(i)), "chock")
	}
	write(t, l.Path(libmap.MapsUUID, "0f8fad5b-d9cb-469f-a165-70867728950e"), "chocks-idx/0\nchocks-idx/1\n\nchocks-idx/4\n")
	write(t, l.Path(libmap.MapsUUID, "7c9e6679-7425-40de-944b-e07fc1f90ae7"), "chocks-idx/3\nchocks-idx/99\n") // 99 is missing
	ca := []string{hash("a"), hash("b"), hash("c")}
	for _, h := range ca {
		write(t, l.Path(libmap.ChocksCA, h), "chock")
	}
	write(t, l.Path(libmap.MapsCA, hash("m")), "chocks-ca/"+ca[0]+"\nchocks-ca/"+ca[1]+"\n")

	// Bad entries.
	write(t, filepath.Join(l.Nodelocal, "chocks-idx", "12.tmp"), "")                              // temporary
	write(t, filepath.Join(l.Nodelocal, "chocks-idx", "007"), "")                                 // non-canonical index
	write(t, filepath.Join(l.Nodelocal, "maps-uuid", "0F8FAD5B-D9CB-469F-A165-70867728950E"), "") // upper case
	write(t, filepath.Join(l.Nodelocal, "maps-uuid", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"), "not a ref\n")
	if err := os.MkdirAll(filepath.Join(l.Nodelocal, "chocks-idx", "77"), 0o755); err != nil { // dir where a file belongs
		t.Fatal(err)
	}
	if err := os.Symlink(l.Path(libmap.ChocksIdx, "0"), filepath.Join(l.Nodelocal, "chocks-idx", "8")); err != nil {
		t.Fatal(err)
	}
	h := hash("misplaced")
	write(t, filepath.Join(l.Local, "chocks-ca", "00", h), "") // hash prefix does not match its folder
	if h[:2] == "00" {
		t.Fatal("pick another misplaced hash")
	}
	write(t, filepath.Join(l.Local, "chocks-ca", "zz", hash("x")), "") // the hh folder has a bad name
	write(t, filepath.Join(l.Local, "maps-ca", "stray"), "")           // a file where hh folders belong
	return l
}

func scanAll(t *testing.T, l Layout, scope libmap.Scope) (Tally, []string, []Entry) {
	t.Helper()
	var tally Tally
	var names []string
	var bad []Entry
	err := l.Scan(context.Background(), scope, func(e Entry) error {
		tally.Add(e)
		if e.Valid() {
			names = append(names, e.Name)
		} else {
			bad = append(bad, e)
		}
		return nil
	}, WithChunk(2))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return tally, names, bad
}

func TestScanClassifiesEveryEntry(t *testing.T) {
	l := tree(t)
	cases := []struct {
		scope   libmap.Scope
		valid   int
		skipped map[Reason]int64
	}{
		{libmap.ChocksIdx, 5, map[Reason]int64{Temporary: 1, BadName: 1, DirForFile: 1, Symlink: 1}},
		{libmap.MapsUUID, 2, map[Reason]int64{BadName: 1, BadMap: 1}},
		{libmap.ChocksCA, 3, map[Reason]int64{HashFolder: 1, BadName: 1}},
		{libmap.MapsCA, 1, map[Reason]int64{FileForDir: 1}},
	}
	for _, c := range cases {
		t.Run(string(c.scope), func(t *testing.T) {
			tally, names, bad := scanAll(t, l, c.scope)
			if int(tally.Objects) != c.valid || len(names) != c.valid {
				t.Fatalf("%d valid objects %v, want %d; bad: %v", tally.Objects, names, c.valid, bad)
			}
			if fmt.Sprint(tally.Skipped) != fmt.Sprint(c.skipped) {
				t.Fatalf("skipped %v, want %v", tally.Skipped, c.skipped)
			}
			for _, n := range names {
				if !ValidName(c.scope, n) {
					t.Fatalf("invalid name %q reported as an object", n)
				}
			}
		})
	}
}

func TestScanReportsMapsWithMissingChocks(t *testing.T) {
	l := tree(t)
	var missing []string
	err := l.Scan(context.Background(), libmap.MapsUUID, func(e Entry) error {
		for _, r := range e.Missing {
			missing = append(missing, e.Name+"→"+r.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || missing[0] != "7c9e6679-7425-40de-944b-e07fc1f90ae7→chocks-idx/99" {
		t.Fatalf("missing chocks reported: %v", missing)
	}
}

func TestScanReportsUnreadableAndGoesOn(t *testing.T) {
	l := tree(t)
	bad := filepath.Join(l.Local, "chocks-ca", hash("a")[:2])
	badFile := l.Path(libmap.ChocksCA, hash("b"))
	openDir = func(p string) (*os.File, error) {
		if p == bad {
			return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES}
		}
		return os.Open(p)
	}
	canRead = func(_ heldDir, _, p string) error {
		if p == badFile {
			return syscall.EACCES
		}
		return nil
	}
	t.Cleanup(func() {
		openDir = os.Open
		canRead = canReadAt
	})
	tally, names, _ := scanAll(t, l, libmap.ChocksCA)
	if tally.Skipped[Unreadable] != 2 {
		t.Fatalf("unreadable %d, want the folder and the file", tally.Skipped[Unreadable])
	}
	if len(names) != 1 || names[0] != hash("c") {
		t.Fatalf("the readable rest was not scanned: %v", names)
	}
}

func TestScanRootErrors(t *testing.T) {
	dir := t.TempDir()
	err := Layout{Local: filepath.Join(dir, "nope")}.Scan(context.Background(), libmap.MapsCA, func(Entry) error { return nil })
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing root: %v", err)
	}
	file := filepath.Join(dir, "f")
	write(t, file, "")
	err = Layout{Nodelocal: file}.Scan(context.Background(), libmap.MapsUUID, func(Entry) error { return nil })
	if !errors.Is(err, ErrNoRoot) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("root is a file: %v", err)
	}
	err = Layout{Nodelocal: dir}.Scan(context.Background(), libmap.MapsUUID, func(Entry) error { return nil })
	if !errors.Is(err, ErrNoScopeDir) {
		t.Fatalf("absent scope folder: %v", err)
	}
}

func TestScanStopsWhenCancelled(t *testing.T) {
	l := tree(t)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := l.Scan(ctx, libmap.ChocksIdx, func(Entry) error { n++; cancel(); return nil }, WithChunk(1))
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Fatalf("after cancel: %d entries, %v", n, err)
	}
}

func TestCountMatchesScan(t *testing.T) {
	l := tree(t)
	// Enough entries in one folder that its listing takes several reads.
	for i := 100; i < 5100; i++ {
		if err := os.WriteFile(l.Path(libmap.ChocksIdx, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, sc := range libmap.Scopes() {
		tally, _, _ := scanAll(t, l, sc)
		n, err := l.Count(context.Background(), sc)
		if err != nil || n != tally.Objects+tally.SkippedTotal() {
			t.Fatalf("%s: count %d, scan %d+%d, %v", sc, n, tally.Objects, tally.SkippedTotal(), err)
		}
	}
}

func TestParseMap(t *testing.T) {
	h := hash("x")
	cases := []struct {
		in   string
		refs string
		err  bool
	}{
		{"chocks-idx/1\nchocks-idx/18446744073709551615\n", "[chocks-idx/1 chocks-idx/18446744073709551615]", false},
		{"\nchocks-ca/" + h + "\n\n", "[chocks-ca/" + h + "]", false},
		{"", "[]", false},
		{"chocks-idx/-1\n", "", true},
		{"chocks-ca/" + strings.ToUpper(h) + "\n", "", true},
		{"maps-uuid/0f8fad5b-d9cb-469f-a165-70867728950e\n", "", true},
		{"chocks-idx\n", "", true},
	}
	for _, c := range cases {
		refs, err := ParseMap(strings.NewReader(c.in))
		if c.err {
			if !errors.Is(err, ErrBadRef) || !strings.Contains(err.Error(), "line ") {
				t.Errorf("%q: want a bad-ref error naming the line, got %v", c.in, err)
			}
			continue
		}
		if err != nil || fmt.Sprint(refs) != c.refs {
			t.Errorf("%q: %v %v, want %s", c.in, refs, err, c.refs)
		}
	}
	var b strings.Builder
	in := []Ref{{libmap.ChocksIdx, "3"}, {libmap.ChocksCA, h}}
	if err := WriteMap(&b, in); err != nil {
		t.Fatal(err)
	}
	if out, err := ParseMap(strings.NewReader(b.String())); err != nil || fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("round trip: %v %v", out, err)
	}
}

func ExampleLayout_Path() {
	l := Layout{Nodelocal: "/var/lib/rok/nodelocal", Local: "/var/lib/rok/local"}
	fmt.Println(l.Path(libmap.ChocksIdx, "42"))
	fmt.Println(l.Path(libmap.MapsCA, "5e3f0a"))
	// Output:
	// /var/lib/rok/nodelocal/chocks-idx/42
	// /var/lib/rok/local/maps-ca/5e/5e3f0a
}
