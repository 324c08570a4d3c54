package conn

import (
	"encoding/binary"
	"time"
	"unicode/utf8"

	clientv2 "go.etcd.io/etcd/client/v2"
)

// decodeNode decodes the "node" of a v2 answer the way v2json does, without
// reflection: a whole-subtree answer holds a node per document, and
// decoding them through json-iterator's reflective decoders was most of
// the client's cost of reading v2 (a move's documents are read once, so
// every document pays it). The nodes of one answer are allocated together.
//
// It takes what etcd writes (encoding/json's output of its v2 event): any
// field order, unknown fields skipped. ok is false for anything else (a
// type it does not expect, a duplicate field, a lone surrogate escape,
// a number with a fraction, trailing bytes…), and the caller decodes the
// answer with v2json instead, which then decides. So for every answer it
// accepts, it gives what v2json gives (FuzzDecodeNode checks it).
func decodeNode(b []byte) (n *clientv2.Node, ok bool) {
	d := v2decoder{b: b}
	n, ok = d.answer()
	if !ok {
		return nil, false
	}
	d.ws()
	return n, d.i == len(d.b)
}

type v2decoder struct {
	b       []byte
	i       int
	depth   int             // objects and arrays open
	slab    []clientv2.Node // nodes allocated ahead, for the answer's nodes
	scratch []byte          // an unescaped string being built
}

// nodeSlab is how many nodes are allocated together.
const nodeSlab = 64

// maxDepth bounds the objects and arrays open at once, as json-iterator
// bounds them (its limit is 10000): deeper answers go to v2json.
const maxDepth = 5000

// open enters an object or an array.
func (d *v2decoder) open() bool {
	d.i++
	d.depth++
	return d.depth <= maxDepth
}

func (d *v2decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next skips whitespace and returns the next byte (0 at the end).
func (d *v2decoder) next() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// object reads an object, calling field for each member with the
// decoder past the colon; field must read the value.
func (d *v2decoder) object(field func(name []byte) bool) bool {
	if d.next() != '{' || !d.open() {
		return false
	}
	if d.next() == '}' {
		d.i++
		d.depth--
		return true
	}
	for {
		if d.next() != '"' {
			return false
		}
		name, ok := d.rawString()
		if !ok || d.next() != ':' {
			return false
		}
		d.i++
		if !field(name) {
			return false
		}
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return true
		default:
			return false
		}
	}
}

// answer reads the answer object and returns its node.
func (d *v2decoder) answer() (*clientv2.Node, bool) {
	var node *clientv2.Node
	seen := false
	ok := d.object(func(name []byte) bool {
		if string(name) != "node" {
			return d.skip()
		}
		if seen || d.next() != '{' {
			return false
		}
		seen = true
		var ok bool
		node, ok = d.node()
		return ok
	})
	return node, ok
}

// The fields of a node that decodeNode reads (field does), each at most
// once: a field's index is its bit in the set already read. Any other is
// skipped.
const (
	fKey = iota
	fValue
	fDir
	fNodes
	fCreated
	fModified
	fExpiration
	fTTL
)

var nodeFields = [...]string{fKey: "key", fValue: "value", fDir: "dir", fNodes: "nodes",
	fCreated: "createdIndex", fModified: "modifiedIndex", fExpiration: "expiration", fTTL: "ttl"}

// field reads the value of nodeFields[f] into n.
func (d *v2decoder) field(n *clientv2.Node, f int) (ok bool) {
	switch f {
	case fKey:
		n.Key, ok = d.str()
	case fValue:
		n.Value, ok = d.str()
	case fDir:
		n.Dir, ok = d.boolean()
	case fNodes:
		n.Nodes, ok = d.nodes()
	case fCreated:
		n.CreatedIndex, ok = d.uint()
	case fModified:
		n.ModifiedIndex, ok = d.uint()
	case fExpiration:
		n.Expiration, ok = d.time()
	case fTTL:
		n.TTL, ok = d.int()
	}
	return ok
}

func (d *v2decoder) newNode() *clientv2.Node {
	if len(d.slab) == 0 {
		d.slab = make([]clientv2.Node, nodeSlab)
	}
	n := &d.slab[0]
	d.slab = d.slab[1:]
	return n
}

// node reads one node object.
func (d *v2decoder) node() (*clientv2.Node, bool) {
	n := d.newNode()
	var seen uint
	ok := d.object(func(name []byte) bool {
		for i := range nodeFields {
			if nodeFields[i] != string(name) {
				continue
			}
			if seen&(1<<i) != 0 {
				return false // a duplicate: v2json decides
			}
			seen |= 1 << i
			return d.field(n, i)
		}
		return d.skip()
	})
	return n, ok
}

func (d *v2decoder) nodes() (clientv2.Nodes, bool) {
	if d.literal("null") {
		return nil, true
	}
	if d.next() != '[' || !d.open() {
		return nil, false
	}
	nodes := clientv2.Nodes{}
	if d.next() == ']' {
		d.i++
		d.depth--
		return nodes, true
	}
	for {
		if d.next() != '{' {
			return nil, false
		}
		n, ok := d.node()
		if !ok {
			return nil, false
		}
		nodes = append(nodes, n)
		switch d.next() {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return nodes, true
		default:
			return nil, false
		}
	}
}

// literal consumes word if it comes next.
func (d *v2decoder) literal(word string) bool {
	d.ws()
	if len(d.b)-d.i >= len(word) && string(d.b[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	return false
}

func (d *v2decoder) boolean() (bool, bool) {
	switch {
	case d.literal("true"):
		return true, true
	case d.literal("false"):
		return false, true
	}
	return false, false
}

// uint reads a non-negative integer: digits only.
func (d *v2decoder) uint() (uint64, bool) {
	d.ws()
	start := d.i
	var v uint64
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		c := uint64(d.b[d.i] - '0')
		if v > (1<<64-1-c)/10 {
			return 0, false // overflows
		}
		v = v*10 + c
		d.i++
	}
	n := d.i - start
	if n == 0 || (n > 1 && d.b[start] == '0') || d.numberGoesOn() {
		return 0, false
	}
	return v, true
}

func (d *v2decoder) int() (int64, bool) {
	d.ws()
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] < '0' || d.b[d.i] > '9') {
			return 0, false
		}
	}
	v, ok := d.uint()
	if !ok || v > 1<<63-1 {
		return 0, false
	}
	if neg {
		return -int64(v), true
	}
	return int64(v), true
}

// numberGoesOn reports a fraction or an exponent after the digits.
func (d *v2decoder) numberGoesOn() bool {
	if d.i >= len(d.b) {
		return false
	}
	switch d.b[d.i] {
	case '.', 'e', 'E':
		return true
	}
	return false
}

// time reads an expiration: a string, as time.Time's UnmarshalJSON reads it.
func (d *v2decoder) time() (*time.Time, bool) {
	if d.next() != '"' {
		return nil, false
	}
	start := d.i
	if _, ok := d.rawString(); !ok {
		return nil, false
	}
	t := new(time.Time)
	if err := t.UnmarshalJSON(d.b[start:d.i]); err != nil {
		return nil, false
	}
	return t, true
}

// rawString reads a string without escapes and returns its bytes (in the
// answer's buffer).
func (d *v2decoder) rawString() ([]byte, bool) {
	if d.next() != '"' {
		return nil, false
	}
	start := d.i + 1
	for j := plainRun(d.b, start); j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < ' ':
			return nil, false
		}
	}
	return nil, false
}

// str reads a string value.
func (d *v2decoder) str() (string, bool) {
	if d.next() != '"' {
		return "", false
	}
	start := d.i + 1
	j := plainRun(d.b, start)
	for ; j < len(d.b); j++ {
		c := d.b[j]
		if c == '"' {
			d.i = j + 1
			return string(d.b[start:j]), true
		}
		if c == '\\' {
			break
		}
		if c < ' ' {
			return "", false
		}
	}
	// Escapes: unescape into scratch, from the first one on.
	s := append(d.scratch[:0], d.b[start:j]...)
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			d.i = j + 1
			d.scratch = s
			return string(s), true
		case c < ' ':
			return "", false
		case c != '\\':
			s = append(s, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return "", false
		}
		switch e := d.b[j+1]; e {
		case '"', '\\', '/':
			s = append(s, e)
		case 'b':
			s = append(s, '\b')
		case 'f':
			s = append(s, '\f')
		case 'n':
			s = append(s, '\n')
		case 'r':
			s = append(s, '\r')
		case 't':
			s = append(s, '\t')
		case 'u':
			if j+6 > len(d.b) {
				return "", false
			}
			r, ok := hex4(d.b[j+2 : j+6])
			if !ok || (r >= 0xd800 && r < 0xe000) {
				return "", false // surrogates: v2json decides
			}
			s = utf8.AppendRune(s, r)
			j += 4
		default:
			return "", false
		}
		j += 2
	}
	return "", false
}

// plainRun returns the end of the run of bytes from i on that a string
// holds as they are (no quote, no backslash, no control character), or
// about: it looks 8 bytes at a time and stops at the word holding the
// first other byte, which the caller then reads a byte at a time.
func plainRun(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(ones*'"'), x^(ones*'\\')
		// A byte of zero in q or bs, or a byte below 0x20 in x, sets
		// its high bit here (the standard word tricks, exact on whether
		// any byte does).
		if ((q-ones)&^q|(bs-ones)&^bs|(x-ones*0x20)&^x)&highs != 0 {
			return i
		}
	}
	return i
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skip reads any value it does not keep: strings (escapes allowed),
// numbers, literals, objects and arrays.
func (d *v2decoder) skip() bool {
	switch c := d.next(); {
	case c == '"':
		_, ok := d.str()
		return ok
	case c == '{':
		return d.object(func([]byte) bool { return d.skip() })
	case c == '[':
		if !d.open() {
			return false
		}
		if d.next() == ']' {
			d.i++
			d.depth--
			return true
		}
		for {
			if !d.skip() {
				return false
			}
			switch d.next() {
			case ',':
				d.i++
			case ']':
				d.i++
				d.depth--
				return true
			default:
				return false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := d.int()
		return ok
	}
	return d.literal("true") || d.literal("false") || d.literal("null")
}
