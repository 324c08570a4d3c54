package gc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// The aside folder of one scope, as a sweep uses it: set aside, remove,
// a file that went before the GC got to it, and the folder removed under
// a running GC (its lease expired and a recovery cleaned up after it).
func TestTombsSetAsideAndRemoveRelativeToTheFolder(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(root, "chocks", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tb := newTombs(filepath.Join(root, AsideDir, "00000000000000aa", "chocks-idx"))
	defer tb.close()

	a := write("a", "12345")
	if vanished, err := tb.setAside(a, "a"); err != nil || vanished {
		t.Fatalf("set aside a: vanished %v, %v", vanished, err)
	}
	if _, err := os.Lstat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a is still at its path after being set aside: %v", err)
	}
	if b, err := os.ReadFile(tb.path("a")); err != nil || string(b) != "12345" {
		t.Fatalf("a set aside reads %q, %v", b, err)
	}
	if size, err := tb.remove("a"); err != nil || size != 5 {
		t.Fatalf("remove a: size %d, %v; want 5 bytes freed", size, err)
	}
	if _, err := os.Lstat(tb.path("a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a is still set aside after its removal: %v", err)
	}
	if _, err := tb.remove("a"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("removing a twice: %v, want not exist (counted as vanished)", err)
	}

	if vanished, err := tb.setAside(filepath.Join(root, "chocks", "never"), "never"); err != nil || !vanished {
		t.Fatalf("set aside a missing file: vanished %v, %v; want vanished", vanished, err)
	}

	// A recovery removes the folder while this GC still holds it open.
	if err := os.RemoveAll(filepath.Join(root, AsideDir)); err != nil {
		t.Fatal(err)
	}
	b := write("b", "xy")
	if vanished, err := tb.setAside(b, "b"); err != nil || vanished {
		t.Fatalf("set aside b after the folder was removed: vanished %v, %v", vanished, err)
	}
	if got, err := os.ReadFile(tb.path("b")); err != nil || string(got) != "xy" {
		t.Fatalf("b set aside into the folder made again reads %q, %v", got, err)
	}
}
