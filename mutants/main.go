package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/rokup/rokup/internal/modroot"
)

func main() {
	fast := flag.Bool("fast", false, "run only the mutants marked fast")
	only := flag.String("only", "", "run only the mutants whose name matches this regexp")
	list := flag.Bool("list", false, "print the mutants and exit")
	baseline := flag.Bool("baseline", false, "first run every selected mutant's tests on the unmutated copy: they must pass")
	keep := flag.Bool("keep", false, "keep the copy of the tree (its path is printed)")
	timeout := flag.Duration("timeout", 10*time.Minute, "go test -timeout for one mutant")
	run := flag.String("run", "", "run these tests instead of the listed ones (to find which tests kill a mutant)")
	flag.Parse()

	sel, err := selectMutants(Mutants, *fast, *only)
	if err != nil {
		fail(err)
	}
	if *run != "" {
		for i := range sel {
			sel[i].Run = *run
		}
	}
	if *list {
		for _, m := range sel {
			fmt.Printf("%-28s %-22s fast=%-5t %s %s\n", m.Name, m.File, m.Fast, strings.Join(m.Pkgs, " "), m.Run)
		}
		return
	}
	root, err := modroot.Dir()
	if err != nil {
		fail(err)
	}
	dir, err := os.MkdirTemp("", "rokup-mutants-")
	if err != nil {
		fail(err)
	}
	if *keep {
		fmt.Fprintf(os.Stderr, "mutants: the copy is %s\n", dir)
	} else {
		copyDir = dir
	}
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() { <-interrupted; exit(130) }()
	if err := copyTree(root, dir); err != nil {
		fail(err)
	}
	// Build everything once before mutating: a copy that does not build
	// would "kill" every mutant.
	pkgs := allPkgs(sel)
	if out, err := goTest(dir, *timeout, "^$", pkgs); err != nil {
		fail(fmt.Errorf("the unmutated tree does not build:\n%s", out))
	}
	if *baseline {
		tried := map[string]bool{}
		for _, m := range sel {
			if tried[m.tests()] {
				continue
			}
			tried[m.tests()] = true
			if out, err := goTest(dir, *timeout, m.Run, m.Pkgs); err != nil {
				fail(fmt.Errorf("baseline: %s's tests (%s %s) fail on the unmutated tree:\n%s", m.Name, strings.Join(m.Pkgs, " "), m.Run, tail(out, 4000)))
			}
		}
	}

	start := time.Now()
	nw, tw := len("MUTANT"), len("TESTS")
	for _, m := range sel {
		nw, tw = max(nw, len(m.Name)), max(tw, len(m.tests()))
	}
	row := fmt.Sprintf("%%-%ds  %%-%ds  %%-8s  %%6s\n", nw, tw)
	fmt.Printf(row, "MUTANT", "TESTS", "RESULT", "SECS")
	var bad []string
	for _, m := range sel {
		r := runOne(dir, m, *timeout)
		fmt.Printf(row, m.Name, m.tests(), r.verdict, fmt.Sprintf("%.1f", r.secs))
		if r.verdict != killed {
			bad = append(bad, m.Name)
			fmt.Printf("    %s\n", strings.ReplaceAll(strings.TrimSpace(r.detail), "\n", "\n    "))
		} else if r.detail != "" {
			fmt.Printf("    killed by %s\n", r.detail)
		}
	}
	fmt.Printf("%d mutants in %.0fs: %d killed", len(sel), time.Since(start).Seconds(), len(sel)-len(bad))
	if len(bad) > 0 {
		fmt.Printf(", not killed: %s\n", strings.Join(bad, ", "))
		exit(1)
	}
	fmt.Println()
	exit(0)
}

// Verdicts.
const (
	killed   = "killed"
	survived = "SURVIVED" // the tests pass with the guard gone
	stale    = "STALE"    // the code to mutate is not found exactly once
	broken   = "BROKEN"   // the mutated tree does not compile: fix the edit
)

type result struct {
	verdict string
	secs    float64
	detail  string
}

// runOne applies m to the copy, runs its tests, and restores the file.
func runOne(dir string, m Mutant, timeout time.Duration) result {
	t0 := time.Now()
	secs := func() float64 { return time.Since(t0).Seconds() }
	path := filepath.Join(dir, filepath.FromSlash(m.File))
	orig, err := os.ReadFile(path)
	if err != nil {
		return result{verdict: stale, detail: err.Error()}
	}
	mutated, err := m.apply(orig)
	if err != nil {
		return result{verdict: stale, detail: err.Error()}
	}
	if err := os.WriteFile(path, mutated, 0o644); err != nil {
		fail(err)
	}
	defer func() {
		if err := os.WriteFile(path, orig, 0o644); err != nil {
			fail(err)
		}
	}()
	out, err := goTest(dir, timeout, m.Run, m.Pkgs)
	switch {
	case err == nil:
		return result{verdict: survived, secs: secs(), detail: "the tests pass with the mutant applied:\n" + tail(out, 1500)}
	case buildFailed(out):
		return result{verdict: broken, secs: secs(), detail: tail(out, 1500)}
	}
	return result{verdict: killed, secs: secs(), detail: strings.Join(failedTests(out), " ")}
}

// goTest runs go test -run run pkgs in dir. Vet is off: a mutant may be
// code vet dislikes, and vet is make test's job.
func goTest(dir string, timeout time.Duration, run string, pkgs []string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	args := append([]string{"test", "-count=1", "-vet=off", "-timeout", timeout.String(), "-run", run}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var (
	buildFail = regexp.MustCompile(`(?m)^FAIL\s+\S+\s+\[(build|setup) failed\]`)
	testFail  = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
)

func buildFailed(out string) bool { return buildFail.MatchString(out) }

func failedTests(out string) []string {
	seen := map[string]bool{}
	var names []string
	for _, m := range testFail.FindAllStringSubmatch(out, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		return []string{"a failure outside a test (panic or timeout)"}
	}
	return names
}

func selectMutants(all []Mutant, fast bool, only string) ([]Mutant, error) {
	re, err := regexp.Compile(only)
	if err != nil {
		return nil, fmt.Errorf("-only: %w", err)
	}
	names := map[string]bool{}
	var sel []Mutant
	for _, m := range all {
		if err := m.valid(); err != nil {
			return nil, err
		}
		if names[m.Name] {
			return nil, fmt.Errorf("mutant %s is listed twice", m.Name)
		}
		names[m.Name] = true
		if (fast && !m.Fast) || !re.MatchString(m.Name) {
			continue
		}
		sel = append(sel, m)
	}
	if len(sel) == 0 {
		return nil, errors.New("no mutant selected")
	}
	return sel, nil
}

func allPkgs(ms []Mutant) []string {
	set := map[string]bool{}
	for _, m := range ms {
		for _, p := range m.Pkgs {
			set[p] = true
		}
	}
	var pkgs []string
	for p := range set {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return pkgs
}

// copyTree copies the working tree as git sees it (tracked files and
// untracked ones not ignored, as they are on disk) into dir.
func copyTree(root, dir string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		if err := copyFile(filepath.Join(root, rel), filepath.Join(dir, rel)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	fi, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil // deleted in the working tree
	}
	if err != nil || !fi.Mode().IsRegular() {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// copyDir is the copy of the tree, removed on exit unless -keep.
var copyDir string

func exit(code int) {
	if copyDir != "" {
		os.RemoveAll(copyDir)
	}
	os.Exit(code)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mutants:", err)
	exit(2)
}
