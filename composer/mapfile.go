package composer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/rokup/rokup/libmap"
)

// Ref is one chock a map references.
type Ref struct {
	Scope libmap.Scope // ChocksIdx or ChocksCA
	Name  string       // the index or the hash
}

// String is the reference as a map file writes it: chocks-idx/<n>.
func (r Ref) String() string { return string(r.Scope) + "/" + r.Name }

// ParseRef parses one map line: chocks-idx/<n> or chocks-ca/<sha256>.
func ParseRef(line string) (Ref, error) {
	scope, name, ok := strings.Cut(line, "/")
	sc := libmap.Scope(scope)
	if !ok || (sc != libmap.ChocksIdx && sc != libmap.ChocksCA) || !ValidName(sc, name) {
		return Ref{}, fmt.Errorf("%w: %q (want chocks-idx/<n> or chocks-ca/<sha256>)", ErrBadRef, line)
	}
	return Ref{Scope: sc, Name: name}, nil
}

// ParseMap reads a map file's references, one per line; blank lines are
// ignored. The error names the first bad line.
func ParseMap(r io.Reader) ([]Ref, error) {
	var refs []Ref
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		ref, err := ParseRef(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		refs = append(refs, ref)
	}
	return refs, sc.Err()
}

// WriteMap writes refs in the map-file format.
func WriteMap(w io.Writer, refs []Ref) error {
	bw := bufio.NewWriter(w)
	for _, r := range refs {
		if _, err := bw.WriteString(r.String() + "\n"); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadMap parses the map file at path.
func ReadMap(path string) ([]Ref, error) {
	var buf []byte
	return readMap(noDir, "", path, &buf)
}

// readMap reads the file at path, the entry name of dir, whole into *buf
// (kept for the next map: the scanner reads one map after another) and
// parses it.
func readMap(dir heldDir, name, path string, buf *[]byte) ([]Ref, error) {
	f, err := openFile(dir, name, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
	}
	*buf = b
	refs, err := parseMap(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return refs, nil
}

// parseMap is ParseMap over a whole file.
func parseMap(b []byte) ([]Ref, error) {
	var refs []Ref
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		ref, err := ParseRef(string(line))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}
