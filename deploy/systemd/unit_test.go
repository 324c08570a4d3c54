package systemd

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	unitFile = "rokup-sidecar.service"
	envFile  = "rokup-sidecar.env"
	binPath  = "/usr/local/bin/rokup" // where the unit runs rokup from
)

// need skips without tool, or fails under CI=true, where every test runs.
func need(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is missing (Debian: apt-get install systemd), so this test fails instead of skipping: %v", tool, err)
		}
		t.Skipf("skipping: %s not found (Debian: apt-get install systemd): %v", tool, err)
	}
	return p
}

// buildRokup builds cmd/rokup of this repository into a temporary dir.
func buildRokup(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rokup")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/rokup")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rokup: %v\n%s", err, b)
	}
	return out
}

// localUnit is the unit as shipped but for ExecStart's path, which points
// at bin: systemd-analyze checks that the program exists.
func localUnit(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(b, []byte("ExecStart="+binPath+" ")); n != 1 {
		t.Fatalf("%s has %d ExecStart=%s lines, want 1", unitFile, n, binPath)
	}
	b = bytes.Replace(b, []byte("ExecStart="+binPath+" "), []byte("ExecStart="+bin+" "), 1)
	p := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUnitVerifies runs systemd-analyze verify on the unit with the built
// binary: any warning (an unknown key, a bad value) fails the test, as
// does an exposure above 2.0 in systemd-analyze security (0 is a locked
// down service, 10 one with no hardening).
func TestUnitVerifies(t *testing.T) {
	sa := need(t, "systemd-analyze")
	unit := localUnit(t, buildRokup(t))
	out, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: (\S+) (\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure %s %s is above 2.0: %v\n%s", m[1], m[2], err, out)
	}
}

// TestUnitHardening checks the directives the deployment relies on, with
// the values it relies on: a change that weakens one fails here.
func TestUnitHardening(t *testing.T) {
	d := directives(t)
	want := map[string]string{
		"Type":                     "exec",
		"User":                     "rokup",
		"EnvironmentFile":          "/etc/rokup/sidecar.env",
		"KillSignal":               "SIGTERM",
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "2",
		"NoNewPrivileges":          "yes",
		"ProtectSystem":            "strict",
		"ReadWritePaths":           "-/var/lib/rok",
		"StateDirectory":           "rokup",
		"PrivateTmp":               "yes",
		"PrivateDevices":           "yes",
		"ProtectHome":              "yes",
		"CapabilityBoundingSet":    "",
		"RestrictAddressFamilies":  "AF_INET AF_INET6 AF_UNIX",
	}
	for k, v := range want {
		got, ok := d[k]
		if !ok {
			t.Errorf("%s: no %s=", unitFile, k)
			continue
		}
		if got[len(got)-1] != v {
			t.Errorf("%s: %s=%s, want %s", unitFile, k, got[len(got)-1], v)
		}
	}
}

// TestExecStartRunsWithTheEnvFile expands ExecStart with the shipped
// environment file as systemd does (${VAR} one argument, $VAR split on
// white space, empty gone) and runs the built binary with it: every flag
// must parse (a usage error exits 2); it then stops at the storage check,
// since this machine has no /var/lib/rok/nodelocal.
func TestExecStartRunsWithTheEnvFile(t *testing.T) {
	if _, err := os.Stat("/var/lib/rok/nodelocal"); err == nil {
		t.Skip("skipping: this machine has a /var/lib/rok/nodelocal: the sidecar would run for real")
	}
	bin := buildRokup(t)
	env := readEnv(t)
	d := directives(t)
	line := d["ExecStart"][0]
	if !strings.HasPrefix(line, binPath+" sidecar ") {
		t.Fatalf("ExecStart=%s does not run %s sidecar", line, binPath)
	}
	args := expand(strings.Fields(line)[1:], env)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("rokup %v: want a failure at the storage check, got %v\n%s", args, err, out)
	}
	if ee.ExitCode() == 2 || !strings.Contains(string(out), "cannot run these steps") {
		t.Fatalf("rokup %v: exit %d, want 1 at the storage check (every flag parsed)\n%s", args, ee.ExitCode(), out)
	}
	for _, f := range []string{"--node", "--nodelocal-root", "--local-root", "--listen-metrics", "--cacert", "--cert", "--key"} {
		if !contains(args, f) {
			t.Errorf("the expanded command line %v lacks %s", args, f)
		}
	}
	if env["ROK_ETCD_ENDPOINTS"] == "" {
		t.Errorf("%s sets no ROK_ETCD_ENDPOINTS", envFile)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// expand substitutes env in words as systemd does in ExecStart.
func expand(words []string, env map[string]string) []string {
	brace := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			out = append(out, strings.Fields(env[w[1:]])...)
			continue
		}
		out = append(out, brace.ReplaceAllStringFunc(w, func(m string) string {
			return env[m[2:len(m)-1]]
		}))
	}
	return out
}

// directives reads the unit's Key=value lines, continuation lines joined.
func directives(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := map[string][]string{}
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if cur != "" {
			l = cur + " " + l
			cur = ""
		}
		if strings.HasSuffix(l, "\\") {
			cur = strings.TrimSpace(strings.TrimSuffix(l, "\\"))
			continue
		}
		if l == "" || l[0] == '#' || l[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if ok {
			d[k] = append(d[k], strings.Join(strings.Fields(v), " "))
		}
	}
	return d
}

// readEnv reads the environment file (KEY=value lines, # comments).
func readEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("%s: not KEY=value: %q", envFile, l)
		}
		env[k] = v
	}
	return env
}
