package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

func main() {
	skips := flag.String("skips", "", "append the skipped tests to this file")
	report := flag.String("report", "", "print the skipped tests listed in this file and exit")
	flag.Parse()
	if *report != "" {
		printReport(*report)
		return
	}
	var out []string
	filter(os.Stdin, os.Stdout, func(s string) { out = append(out, s) })
	if *skips != "" {
		f, err := os.OpenFile(*skips, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testlog:", err)
			return
		}
		for _, s := range out {
			fmt.Fprintln(f, s)
		}
		f.Close()
	}
}

// filter copies the non-verbose output of in to w and reports each
// skipped test as "pkg TestName: reason".
func filter(in io.Reader, w io.Writer, skipped func(string)) {
	tests := map[string]*testOut{} // the tests still running, by "pkg test"
	out := func(key string) *testOut {
		if tests[key] == nil {
			tests[key] = &testOut{}
		}
		return tests[key]
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line) // not an event: go vet, a crash
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "run":
			out(key)
		case "output":
			o := strings.TrimSpace(e.Output)
			switch {
			case e.Test == "":
				if o != "PASS" && !strings.HasPrefix(o, "=== ") {
					fmt.Fprint(w, e.Output)
				}
			case strings.HasPrefix(o, "--- "):
				out(key).header = e.Output
			case !strings.HasPrefix(o, "=== "):
				out(key).lines = append(out(key).lines, e.Output)
			}
		case "fail":
			if e.Test == "" {
				continue
			}
			block := out(key).String()
			delete(tests, key)
			// A failed subtest prints under its parent, as go test does.
			if i := strings.LastIndex(e.Test, "/"); i > 0 && tests[e.Package+" "+e.Test[:i]] != nil {
				p := tests[e.Package+" "+e.Test[:i]]
				p.children = append(p.children, indent(block))
				continue
			}
			fmt.Fprint(w, block)
		case "skip":
			if e.Test != "" {
				skipped(fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason(out(key).lines)))
			}
			delete(tests, key)
		case "pass":
			delete(tests, key)
		}
	}
}

// testOut is what one test printed: its "--- FAIL" line, its log, and the
// blocks of its failed subtests.
type testOut struct {
	header   string
	lines    []string
	children []string
}

func indent(block string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(block, "\n"), "\n", "\n    ") + "\n"
}

func (t *testOut) String() string {
	return t.header + strings.Join(t.lines, "") + strings.Join(t.children, "")
}

// reason is the skip message: the last line the test logged.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" {
			return l
		}
	}
	return "(no reason given)"
}

func printReport(path string) {
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "testlog:", err)
		return
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		fmt.Println("skipped tests: none")
		return
	}
	fmt.Printf("skipped tests (%d):\n", len(lines))
	for _, l := range lines {
		fmt.Println("  " + l)
	}
}
