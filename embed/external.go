package embed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// ErrNoEtcd34 is returned when Debian's etcd 3.4 or its etcdctl is not on
// PATH, or is another version.
var ErrNoEtcd34 = errors.New("embed: Debian's etcd 3.4 (etcd-server, etcd-client; make deps installs them) is not available")

// Etcd34 returns the path of an external etcd 3.4.x server (`etcd` on PATH).
func Etcd34() (string, error) { return tool34("etcd", nil, "--version") }

// Etcdctl34 returns the path of etcdctl 3.4.x (`etcdctl` on PATH).
func Etcdctl34() (string, error) { return tool34("etcdctl", []string{"ETCDCTL_API=3"}, "version") }

// tool34 finds name on PATH and checks its version output says 3.4.x.
func tool34(name string, env []string, args ...string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: no %s on PATH", ErrNoEtcd34, name)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s %s: %v", ErrNoEtcd34, path, strings.Join(args, " "), err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if f := strings.Fields(first); len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "3.4.") {
		return "", fmt.Errorf("%w: %s says %q, want 3.4.x", ErrNoEtcd34, path, first)
	}
	return path, nil
}

// NeedEtcd34 returns the external etcd 3.4 for a test that needs it. When
// it is missing the test skips and says why, except in CI (CI=true),
// where it fails: CI must run every test.
func NeedEtcd34(t testing.TB) string {
	t.Helper()
	path, err := Etcd34()
	if err != nil {
		Unavailable(t, err)
	}
	return path
}

// NeedEtcdctl34 is NeedEtcd34 for etcdctl.
func NeedEtcdctl34(t testing.TB) string {
	t.Helper()
	path, err := Etcdctl34()
	if err != nil {
		Unavailable(t, err)
	}
	return path
}

// Unavailable ends a test whose external dependency is missing: a skip
// that names err, or a failure when CI=true.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a dependency is missing, so this test fails instead of skipping: %v", err)
	}
	t.Skipf("skipping: %v", err)
}
