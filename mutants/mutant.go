package main

import (
	"fmt"
	"regexp"
	"strings"
)

// Mutant is one safety guard taken out of the code, and the tests that
// must notice.
type Mutant struct {
	Name string
	// File is the file mutated, relative to the module root.
	File string
	// Edits are applied in order. Each one's Find must occur exactly once
	// in the file, else the mutant is STALE: the list never silently
	// points at code that moved.
	Edits []Edit
	// Pkgs and Run are the tests that must fail: go test -run Run Pkgs.
	Pkgs []string
	Run  string
	// Fast mutants run in CI (.ci/run, make mutants-fast): their tests
	// take seconds, not minutes.
	Fast bool
	// Why says what the guard protects.
	Why string
}

// Edit replaces the code Find with Replace. A run of white space in Find
// matches any run of white space (a line break and indentation included),
// so Find can be written on one line; Replace is inserted as written.
type Edit struct {
	Find, Replace string
}

func (m Mutant) valid() error {
	switch {
	case m.Name == "" || m.File == "" || len(m.Edits) == 0 || len(m.Pkgs) == 0 || m.Run == "":
		return fmt.Errorf("mutant %q: name, file, edits, pkgs and run are all required", m.Name)
	}
	if _, err := regexp.Compile(m.Run); err != nil {
		return fmt.Errorf("mutant %s: run: %w", m.Name, err)
	}
	for _, e := range m.Edits {
		if strings.TrimSpace(e.Find) == "" {
			return fmt.Errorf("mutant %s: an edit finds nothing", m.Name)
		}
	}
	return nil
}

// tests names the tests in the table: packages and -run.
func (m Mutant) tests() string {
	var short []string
	for _, p := range m.Pkgs {
		short = append(short, strings.TrimPrefix(p, "./"))
	}
	return strings.Join(short, ",") + " " + m.Run
}

// apply returns src with every edit made, or an error naming the edit
// whose code is not found exactly once.
func (m Mutant) apply(src []byte) ([]byte, error) {
	s := string(src)
	for i, e := range m.Edits {
		re := findPattern(e.Find)
		locs := re.FindAllStringIndex(s, -1)
		if len(locs) != 1 {
			return nil, fmt.Errorf("%s: edit %d: %q found %d times in %s, want exactly once", m.Name, i+1, e.Find, len(locs), m.File)
		}
		s = s[:locs[0][0]] + e.Replace + s[locs[0][1]:]
	}
	return []byte(s), nil
}

var space = regexp.MustCompile(`\s+`)

// findPattern matches find literally, except that white space matches
// any white space.
func findPattern(find string) *regexp.Regexp {
	parts := space.Split(strings.TrimSpace(find), -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, `\s+`))
}
