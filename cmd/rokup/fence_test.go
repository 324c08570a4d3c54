package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/embed"
)

func runRokup(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	code := cli.Run(root, args, &errb)
	return code, out.String(), errb.String()
}

func TestFenceCommandsSetStatusRelease(t *testing.T) {
	m := embed.NewTestMember(t)
	ep := "--endpoints=" + m.ClientURL()

	code, out, _ := runRokup(t, "fence", "status", ep)
	if code != 0 || !strings.Contains(out, "not fenced") {
		t.Fatalf("status before: %d %q", code, out)
	}
	if code, _, errs := runRokup(t, "fence", "set", ep); code != 2 || !strings.Contains(errs, "--reason") {
		t.Fatalf("set without --reason: exit %d, %q; want 2", code, errs)
	}
	if code, _, errs := runRokup(t, "fence", "set", ep, "--holder", "alice", "--reason", "disk swap"); code != 0 {
		t.Fatalf("set: %d %s", code, errs)
	}
	code, out, _ = runRokup(t, "fence", "status", ep, "-o", "json")
	var r fenceReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || !r.Fenced || r.Holder != "alice" || r.Reason != "disk swap" {
		t.Fatalf("status -o json: %d %q (%v)", code, out, err)
	}
	if code, _, errs := runRokup(t, "fence", "set", ep, "--holder", "bob", "--reason", "x"); code != 1 || !strings.Contains(errs, `"alice"`) {
		t.Fatalf("set by another holder: exit %d, %q; want 1 naming alice", code, errs)
	}
	if code, _, errs := runRokup(t, "fence", "release", ep, "--holder", "bob"); code != 1 || !strings.Contains(errs, `"alice"`) {
		t.Fatalf("release by another holder: exit %d, %q; want 1 naming alice", code, errs)
	}
	if code, out, errs := runRokup(t, "fence", "release", ep, "--holder", "bob", "--force"); code != 0 || !strings.Contains(out, `"alice"`) {
		t.Fatalf("forced release: %d %q %q", code, out, errs)
	}
	if code, out, _ := runRokup(t, "fence", "release", ep, "--holder", "bob"); code != 0 || !strings.Contains(out, "not set") {
		t.Fatalf("release when not set: %d %q", code, out)
	}
}
