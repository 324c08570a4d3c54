package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/rokup/rokup/internal/modroot"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds ./cmd/... once per test process into a temporary bin
// directory and returns it. Building rather than reusing bin/ means a test
// never runs stale binaries; and it is the working tree that is built,
// always: when it does not build, every test that needs the binaries fails
// and says so (never a quiet fallback to other sources, such as HEAD).
func Binaries() (string, error) {
	buildOnce.Do(func() {
		if dir := os.Getenv("ROKUP_HARNESS_BIN"); dir != "" {
			buildDir = dir // prebuilt binaries, e.g. bin/ of make build
			return
		}
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "rokup-harness-bin-")
		if buildErr != nil {
			return
		}
		if out, err := build(root, buildDir); err != nil {
			buildErr = fmt.Errorf("harness: the working tree %s does not build (go build ./cmd/...: %v); fix it, or set ROKUP_HARNESS_BIN to prebuilt binaries:\n%s", root, err, out)
		}
	})
	return buildDir, buildErr
}

func build(root, dir string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	return cmd.CombinedOutput()
}

// ModuleRoot is the rokup module's directory, as go env GOMOD names it.
func ModuleRoot() (string, error) {
	dir, err := modroot.Dir()
	if err != nil {
		return "", fmt.Errorf("harness: %w", err)
	}
	return dir, nil
}

// RemoveBinaries deletes what Binaries built (not prebuilt ones); call it
// from TestMain once the tests are over.
func RemoveBinaries() {
	if buildDir != "" && os.Getenv("ROKUP_HARNESS_BIN") == "" {
		os.RemoveAll(buildDir)
	}
}
