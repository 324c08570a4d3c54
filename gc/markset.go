package gc

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"slices"
)

// markSet is what the mark reached: fixed-size keys in one sorted slice,
// looked up by binary search. A map costs two to six times the key's size
// per entry (its slots, control bytes and the doubling); this costs the
// key, so the mark of 10 million objects stays within gc's budget of 64
// MiB per million (issue #14).
//
// Keys are appended; the unsorted tail is sorted and merged in whenever
// it outgrows the sorted part, so a chock listed by many maps costs one
// key, not one per reference. seal merges the last tail before lookups.
type markSet[K any] struct {
	keys   []K
	sorted int // keys[:sorted] is sorted and without duplicates
	cmp    func(a, b K) int
}

// minTail is how many keys are appended before the first merge.
const minTail = 1 << 14

func newMarkSet[K any](cmp func(a, b K) int) *markSet[K] {
	return &markSet[K]{cmp: cmp}
}

func (s *markSet[K]) add(k K) {
	if _, ok := slices.BinarySearchFunc(s.keys[:s.sorted], k, s.cmp); ok {
		return
	}
	s.keys = append(s.keys, k)
	if len(s.keys)-s.sorted > max(s.sorted, minTail) {
		s.merge()
	}
}

func (s *markSet[K]) merge() {
	slices.SortFunc(s.keys, s.cmp)
	s.keys = slices.CompactFunc(s.keys, func(a, b K) bool { return s.cmp(a, b) == 0 })
	s.sorted = len(s.keys)
}

// seal makes every key visible to has, and gives back the slice's spare
// capacity: the set is kept for the whole sweep.
func (s *markSet[K]) seal() {
	s.merge()
	if cap(s.keys) > len(s.keys)+len(s.keys)/8 {
		s.keys = slices.Clone(s.keys)
	}
}

// has reports whether k was added before the last seal.
func (s *markSet[K]) has(k K) bool {
	_, ok := slices.BinarySearchFunc(s.keys[:s.sorted], k, s.cmp)
	return ok
}

func (s *markSet[K]) len() int { return s.sorted }

// all yields the keys in order (after seal).
func (s *markSet[K]) all() []K { return s.keys[:s.sorted] }

// newIdxSet is the chocks-idx a node's maps reach: their numbers, exact.
func newIdxSet() *markSet[uint64] { return newMarkSet(cmp.Compare[uint64]) }

// newMapSet is the maps-ca the versions name: whole hashes, since the
// mark reads each map's file by its name.
func newMapSet() *markSet[[32]byte] {
	return newMarkSet(func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
}

// chockKey is the first 16 bytes of a chocks-ca name, a sha256 already:
// two distinct chocks share a key with probability 2⁻¹²⁸. Were it to
// happen, the unreachable one would look reached and be kept: a collision
// can only make gc keep an object, never delete a live one, because the
// set only ever answers "reached" for more names than were added, never
// for fewer.
type chockKey struct{ hi, lo uint64 }

func newChockSet() *markSet[chockKey] {
	return newMarkSet(func(a, b chockKey) int {
		if c := cmp.Compare(a.hi, b.hi); c != 0 {
			return c
		}
		return cmp.Compare(a.lo, b.lo)
	})
}

// keyOf is the key of a validated chocks-ca name (64 hex digits).
func keyOf(name string) chockKey {
	var b [16]byte
	hex.Decode(b[:], []byte(name[:32])) // names are validated hashes
	return chockKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}
