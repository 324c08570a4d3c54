package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyFindsCodeExactlyOnceWhateverItsLayout(t *testing.T) {
	src := "\tresp, err := kv.Txn(ctx).\n\t\tIf(a,\n\t\t\tb).\n\t\tCommit()\n"
	m := Mutant{Name: "m", File: "f.go", Edits: []Edit{{Find: "If(a, b).", Replace: "If(a)."}}}
	got, err := m.apply([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := "\tresp, err := kv.Txn(ctx).\n\t\tIf(a).\n\t\tCommit()\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for _, find := range []string{"If(a, c).", "kv", "If(a,b)."} {
		m.Edits[0].Find = find
		if _, err := m.apply([]byte(src + "kv\n")); err == nil || !strings.Contains(err.Error(), "want exactly once") {
			t.Errorf("find %q: want a stale error, got %v", find, err)
		}
	}
}

// Every listed mutant applies to the tree as it is: a guard that moved or
// changed shows up here, in make test, not only in make mutants.
func TestEveryMutantAppliesToTheTree(t *testing.T) {
	if _, err := selectMutants(Mutants, false, ""); err != nil {
		t.Fatal(err)
	}
	for _, m := range Mutants {
		src, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(m.File)))
		if err != nil {
			t.Errorf("%s: %v", m.Name, err)
			continue
		}
		if _, err := m.apply(src); err != nil {
			t.Errorf("stale mutant: %v", err)
		}
		for _, p := range m.Pkgs {
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("%s: package %s: %v", m.Name, p, err)
			}
		}
	}
}
