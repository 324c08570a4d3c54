package composer

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rokup/rokup/libmap"
)

// The byte checks of ValidName accept exactly what these expressions do
// (the classifier's definition before it stopped using regexps).
var (
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hhRE   = regexp.MustCompile(`^[0-9a-f]{2}$`)
)

func TestValidNameMatchesTheRegexps(t *testing.T) {
	u := "0f8fad5b-d9cb-469f-a165-70867728950e"
	h := hash("x")
	names := []string{
		u, strings.ToUpper(u), u[:35], u + "0", u + "\n", "\n" + u, strings.ReplaceAll(u, "-", ""),
		strings.Replace(u, "-", "_", 1), u[:8] + "-" + u[9:], "0f8fad5b-d9cb-469f-a165-70867728950g",
		"0f8fad5bd-9cb-469f-a165-70867728950e", "{" + u[1:35] + "}", "g" + u[1:], u[:35] + "/",
		h, strings.ToUpper(h), h[:63], h + "0", h[:63] + "g", h[:63] + "G", h[:63] + ":", h[:63] + "`", h[:63] + "@",
		h[:63] + "/", "0x" + h[2:], " " + h[1:], h[:63] + "\x00", h[:62] + "é",
		"", "0", "00", "0f", "0F", "f0", "fg", "g0", "f/", ":0", "`a", "000",
	}
	for _, n := range names {
		for _, sc := range []libmap.Scope{libmap.MapsUUID, libmap.MapsCA, libmap.ChocksCA} {
			want := hashRE.MatchString(n)
			if sc == libmap.MapsUUID {
				want = uuidRE.MatchString(n)
			}
			if got := ValidName(sc, n); got != want {
				t.Errorf("ValidName(%s, %q) = %v, the regexp says %v", sc, n, got, want)
			}
		}
		if isHH(n) != hhRE.MatchString(n) {
			t.Errorf("isHH(%q) = %v, the regexp says %v", n, isHH(n), hhRE.MatchString(n))
		}
	}
	// Every single-byte change of a valid name.
	for _, base := range []string{u, h, "ab"} {
		for i := 0; i < len(base); i++ {
			for c := 0; c < 256; c++ {
				n := base[:i] + string([]byte{byte(c)}) + base[i+1:]
				if ValidName(libmap.MapsUUID, n) != uuidRE.MatchString(n) || ValidName(libmap.ChocksCA, n) != hashRE.MatchString(n) || isHH(n) != hhRE.MatchString(n) {
					t.Fatalf("%q: byte checks and regexps disagree", n)
				}
			}
		}
	}
}

// isIndex accepts exactly the names FormatUint writes, as the parse and
// format round trip it replaces did.
func TestValidIndexMatchesTheRoundTrip(t *testing.T) {
	roundTrip := func(s string) bool {
		n, err := strconv.ParseUint(s, 10, 64)
		return err == nil && strconv.FormatUint(n, 10) == s
	}
	names := []string{
		"", "0", "00", "01", "1", "10", "+1", "-0", "-1", " 1", "1 ", "1_000", "0x1", "1e3", "１",
		"9", "99", "100", "123456789", "18446744073709551615", "18446744073709551616", "18446744073709551614",
		"28446744073709551615", "99999999999999999999", "184467440737095516150", "010000000000000000000",
		"10000000000000000000", "09", "/1", ":1", "1/", "1:",
	}
	for _, n := range names {
		if got, want := ValidName(libmap.ChocksIdx, n), roundTrip(n); got != want {
			t.Errorf("ValidName(chocks-idx, %q) = %v, the round trip says %v", n, got, want)
		}
	}
	// Every single-byte change of indexes short and longest.
	for _, base := range []string{"7", "42", "18446744073709551615", "10000000000000000000"} {
		for i := 0; i < len(base); i++ {
			for c := 0; c < 256; c++ {
				n := base[:i] + string([]byte{byte(c)}) + base[i+1:]
				if ValidName(libmap.ChocksIdx, n) != roundTrip(n) {
					t.Fatalf("%q: byte checks and the round trip disagree", n)
				}
			}
		}
	}
}
