package main

import (
	"strings"
	"testing"
)

// The go test -json of a package with a passing, a failing, a skipping
// test and a failing subtest (Time and Elapsed dropped).
const stream = `{"Action":"start","Package":"tl"}
{"Action":"run","Package":"tl","Test":"TestA"}
{"Action":"output","Package":"tl","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"tl","Test":"TestA","Output":"    x_test.go:3: fine\n"}
{"Action":"output","Package":"tl","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}
{"Action":"pass","Package":"tl","Test":"TestA"}
{"Action":"run","Package":"tl","Test":"TestB"}
{"Action":"output","Package":"tl","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Action":"output","Package":"tl","Test":"TestB","Output":"    x_test.go:4: context line\n"}
{"Action":"output","Package":"tl","Test":"TestB","Output":"    x_test.go:4: boom\n"}
{"Action":"output","Package":"tl","Test":"TestB","Output":"--- FAIL: TestB (0.00s)\n"}
{"Action":"fail","Package":"tl","Test":"TestB"}
{"Action":"run","Package":"tl","Test":"TestC"}
{"Action":"output","Package":"tl","Test":"TestC","Output":"=== RUN   TestC\n"}
{"Action":"output","Package":"tl","Test":"TestC","Output":"    x_test.go:5: no etcd\n"}
{"Action":"output","Package":"tl","Test":"TestC","Output":"--- SKIP: TestC (0.00s)\n"}
{"Action":"skip","Package":"tl","Test":"TestC"}
{"Action":"run","Package":"tl","Test":"TestD"}
{"Action":"output","Package":"tl","Test":"TestD","Output":"=== RUN   TestD\n"}
{"Action":"run","Package":"tl","Test":"TestD/sub"}
{"Action":"output","Package":"tl","Test":"TestD/sub","Output":"=== RUN   TestD/sub\n"}
{"Action":"output","Package":"tl","Test":"TestD/sub","Output":"    x_test.go:6: sub failed\n"}
{"Action":"output","Package":"tl","Test":"TestD/sub","Output":"--- FAIL: TestD/sub (0.00s)\n"}
{"Action":"fail","Package":"tl","Test":"TestD/sub"}
{"Action":"output","Package":"tl","Test":"TestD","Output":"--- FAIL: TestD (0.00s)\n"}
{"Action":"fail","Package":"tl","Test":"TestD"}
{"Action":"output","Package":"tl","Output":"FAIL\n"}
{"Action":"output","Package":"tl","Output":"FAIL\ttl\t0.004s\n"}
{"Action":"fail","Package":"tl"}`

func TestFilterPrintsWhatGoTestPrintsAndListsSkips(t *testing.T) {
	var out strings.Builder
	var skips []string
	filter(strings.NewReader(stream), &out, func(s string) { skips = append(skips, s) })
	want := `--- FAIL: TestB (0.00s)
    x_test.go:4: context line
    x_test.go:4: boom
--- FAIL: TestD (0.00s)
    --- FAIL: TestD/sub (0.00s)
        x_test.go:6: sub failed
FAIL
FAIL	tl	0.004s
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if len(skips) != 1 || skips[0] != "tl TestC: x_test.go:5: no etcd" {
		t.Errorf("skips %q", skips)
	}
}
