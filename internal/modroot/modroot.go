// Package modroot finds the rokup module's folder, for the tools that
// build or copy it (the integration harness, the mutant runner).
package modroot

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Dir is the folder holding the go.mod of the module the current folder
// is in, as `go env GOMOD` tells; it fails outside any module.
func Dir() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the rokup module")
	}
	return filepath.Dir(mod), nil
}
