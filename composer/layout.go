package composer

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rokup/rokup/libmap"
)

var (
	// ErrNoRoot is returned when a storage root does not exist or is not a
	// directory.
	ErrNoRoot = errors.New("composer: storage root unusable")
	// ErrNoScopeDir is returned by Scan when the root has no folder for the
	// scope: there is nothing of that scope to scan.
	ErrNoScopeDir = errors.New("composer: no folder for the scope")
	// ErrBadRef is returned for a map line that is not a chock reference.
	ErrBadRef = errors.New("composer: bad chock reference")
)

// Layout names the two storage roots of a node. Either may be empty when
// the caller works on the other only.
type Layout struct {
	Nodelocal string // holds maps-uuid/ and chocks-idx/ of one node
	Local     string // holds maps-ca/ and chocks-ca/, shared
}

// Root is the root that holds scope's folder.
func (l Layout) Root(scope libmap.Scope) string {
	if scope.Nodelocal() {
		return l.Nodelocal
	}
	return l.Local
}

// Dir is scope's folder.
func (l Layout) Dir(scope libmap.Scope) string {
	return filepath.Join(l.Root(scope), string(scope))
}

// Path is the file of the object name of scope: maps-uuid/<uuid>,
// chocks-idx/<n>, maps-ca/<hh>/<hash>, chocks-ca/<hh>/<hash>.
func (l Layout) Path(scope libmap.Scope, name string) string {
	if !scope.Nodelocal() && len(name) >= 2 {
		return filepath.Join(l.Root(scope), string(scope), name[:2], name)
	}
	return filepath.Join(l.Root(scope), string(scope), name)
}

// CheckRoot fails with ErrNoRoot, naming root, unless it is a directory.
func CheckRoot(root string) error {
	if root == "" {
		return fmt.Errorf("%w: no root given", ErrNoRoot)
	}
	fi, err := os.Stat(root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s does not exist", ErrNoRoot, root)
		}
		return fmt.Errorf("%w: %v", ErrNoRoot, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrNoRoot, root)
	}
	return nil
}

// ValidName reports whether name is a valid object name in scope: a
// canonical lower-case UUID, a canonical decimal uint64, or a lower-case
// sha256 hex digest. It runs once per entry of a scan, so it checks bytes
// rather than matching a regexp (five to ten times slower here).
func ValidName(scope libmap.Scope, name string) bool {
	switch scope {
	case libmap.MapsUUID:
		return isUUID(name)
	case libmap.ChocksIdx:
		return isIndex(name)
	case libmap.MapsCA, libmap.ChocksCA:
		return len(name) == 64 && isLowerHex(name)
	}
	return false
}

// isIndex: the canonical decimal form of a uint64 (what FormatUint
// writes), checked without formatting the number back, which allocates.
func isIndex(s string) bool {
	if len(s) == 0 || len(s) > len(maxIndex) || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	// Digit strings of one length compare as their numbers do.
	return len(s) < len(maxIndex) || s <= maxIndex
}

// maxIndex is the largest index, math.MaxUint64.
var maxIndex = strconv.FormatUint(math.MaxUint64, 10)

// isUUID: 8-4-4-4-12 lower-case hex digits.
func isUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	return isLowerHex(s[:8]) && isLowerHex(s[9:13]) && isLowerHex(s[14:18]) && isLowerHex(s[19:23]) && isLowerHex(s[24:])
}

// isLowerHex: only 0-9 and a-f.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isHH is a fan-out folder's name: two lower-case hex digits.
func isHH(s string) bool { return len(s) == 2 && isLowerHex(s) }
