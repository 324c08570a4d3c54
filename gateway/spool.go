package gateway

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// DefaultSpoolBytes bounds the spool file: a store whose documents take
// more is read from v2 twice instead.
const DefaultSpoolBytes = 1 << 30

// spool keeps the documents the count read from v2, in a temporary file,
// so the copy reads them back from local disk instead of asking etcd for
// the whole store a second time (etcd builds every v2 answer whole, in
// JSON; that is most of a walk's cost). It changes nothing in what the
// move proves: the copy writes what the count read, and verification
// either finds v2's index where the count left it (v2 is still exactly
// what was spooled) or walks v2 again and names every change.
//
// A record is the key, the value (each a uvarint length and the bytes)
// and the expiry in Unix nanoseconds (a varint, 0 for none). Memory is a
// buffer; the file has no name once created, and is gone when the move
// ends, however it ends.
type spool struct {
	f     *os.File
	w     *bufio.Writer
	bytes int64
	max   int64
	n     int64
	buf   []byte
}

// newSpool creates the spool file in dir (the system's temp dir when
// empty), bounded by max bytes.
func newSpool(dir string, max int64) (*spool, error) {
	f, err := os.CreateTemp(dir, "rokup-gw-spool-")
	if err != nil {
		return nil, err
	}
	// Unlinked at once: the open file keeps its data, and the kernel frees
	// it when the file is closed, even when the process is killed.
	os.Remove(f.Name())
	return &spool{f: f, w: bufio.NewWriterSize(f, 1<<20), max: max}, nil
}

var errSpoolFull = errors.New("spool full")

// add appends one document.
func (s *spool) add(key, value string, exp *time.Time) error {
	var ns int64
	if exp != nil {
		ns = exp.UnixNano()
	}
	b := s.buf[:0]
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, value...)
	b = binary.AppendVarint(b, ns)
	s.buf = b
	if s.bytes += int64(len(b)); s.bytes > s.max {
		return errSpoolFull
	}
	s.n++
	_, err := s.w.Write(b)
	return err
}

// each reads the documents back, in the order they were added.
func (s *spool) each(fn func(key, value string, exp *time.Time) error) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(s.f, 1<<20)
	var buf []byte
	str := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf), nil
	}
	for i := int64(0); i < s.n; i++ {
		k, err := str()
		if err != nil {
			return s.broken(err)
		}
		v, err := str()
		if err != nil {
			return s.broken(err)
		}
		ns, err := binary.ReadVarint(r)
		if err != nil {
			return s.broken(err)
		}
		var exp *time.Time
		if ns != 0 {
			t := time.Unix(0, ns)
			exp = &t
		}
		if err := fn(k, v, exp); err != nil {
			return err
		}
	}
	return nil
}

func (s *spool) broken(err error) error {
	return fmt.Errorf("gateway: spool file %s unreadable: %w", s.f.Name(), err)
}

// close releases the file.
func (s *spool) close() { s.f.Close() }
