package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds ./cmd/... once per test process into a temporary bin
// directory and returns it. Building rather than reusing bin/ means a test
// never runs stale binaries.
func Binaries() (string, error) {
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "rokup-harness-bin-")
		if buildErr != nil {
			return
		}
		if dir := os.Getenv("ROKUP_HARNESS_BIN"); dir != "" {
			buildDir = dir // prebuilt binaries, e.g. bin/ of make build
			return
		}
		out, err := build(root, buildDir)
		if err == nil {
			return
		}
		// Colleagues edit the same checkout: when the working tree does
		// not build, the last commit is the next best thing.
		snap, serr := os.MkdirTemp("", "rokup-harness-src-")
		if serr == nil {
			defer os.RemoveAll(snap)
			arch := exec.Command("sh", "-c", "git archive HEAD | tar -x -C "+snap)
			arch.Dir = root
			if aout, aerr := arch.CombinedOutput(); aerr == nil {
				if _, berr := build(snap, buildDir); berr == nil {
					fmt.Fprintf(os.Stderr, "harness: the working tree does not build; testing binaries built from HEAD:\n%s", out)
					return
				}
			} else {
				out = append(out, aout...)
			}
		}
		buildErr = fmt.Errorf("harness: go build ./cmd/...: %v\n%s", err, out)
	})
	return buildDir, buildErr
}

func build(root, dir string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	return cmd.CombinedOutput()
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("harness: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("harness: not inside the rokup module")
	}
	return filepath.Dir(mod), nil
}

// RemoveBinaries deletes what Binaries built (not prebuilt ones); call it
// from TestMain once the tests are over.
func RemoveBinaries() {
	if buildDir != "" && os.Getenv("ROKUP_HARNESS_BIN") == "" {
		os.RemoveAll(buildDir)
	}
}
