package container

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestImage checks what `make image` built: the four binaries, static, and
// each runs in the image (FROM scratch: a binary that wants libc cannot);
// the CA bundle; a non-root user; the version as a label and in the
// binary; and nothing else in the file system.
func TestImage(t *testing.T) {
	img := needImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	out, err := podman(ctx, "image", "inspect", img.Name)
	if err != nil {
		t.Fatal(err)
	}
	var info []struct {
		Size   int64
		Config struct {
			User   string
			Env    []string
			Cmd    []string
			Labels map[string]string
		}
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info) != 1 {
		t.Fatalf("podman image inspect: %v\n%s", err, out)
	}
	cfg := info[0].Config
	if got := cfg.Labels["org.opencontainers.image.version"]; got != img.Version {
		t.Errorf("label org.opencontainers.image.version = %q, want %q", got, img.Version)
	}
	if cfg.User != "65532:65532" {
		t.Errorf("image user %q, want the non-root 65532:65532", cfg.User)
	}
	t.Logf("image %s: %d bytes, user %s, env %v, cmd %v", img.Name, info[0].Size, cfg.User, cfg.Env, cfg.Cmd)

	// The default command prints the versions, with the one stamped in.
	out, err = podman(ctx, append(append([]string{"run", "--rm"}, runFlags...), img.Name)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "rokup "+img.Version+"\n") {
		t.Errorf("the image's default command printed %q, want rokup %s", out, img.Version)
	}
	for _, bin := range []string{"rokup", "rok-gw-manage", "rok-composer-tool", "rok-gc"} {
		if out, err := podman(ctx, append(append([]string{"run", "--rm"}, runFlags...), img.Name, bin, "--help")...); err != nil {
			t.Errorf("%s --help in the image: %v", bin, err)
		} else if !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help in the image printed no usage:\n%s", bin, out)
		}
		checkStatic(t, filepath.Join(img.Dir, "rootfs", "usr", "local", "bin", bin))
	}

	// The file system, read from an exported container: exactly this.
	files := exportFS(t, img)
	want := map[string]string{
		"etc/":                              "dir",
		"etc/group":                         "file",
		"etc/passwd":                        "file",
		"etc/ssl/":                          "dir",
		"etc/ssl/certs/":                    "dir",
		"etc/ssl/certs/ca-certificates.crt": "file",
		"tmp/":                              "dir 1777",
		"usr/":                              "dir",
		"usr/local/":                        "dir",
		"usr/local/bin/":                    "dir",
		"usr/local/bin/rok-composer-tool":   "file",
		"usr/local/bin/rok-gc":              "file",
		"usr/local/bin/rok-gw-manage":       "file",
		"usr/local/bin/rokup":               "file",
	}
	var extra []string
	for name, kind := range files.kinds {
		w, ok := want[name]
		switch {
		case !ok && !podmanOwn(name):
			extra = append(extra, name)
		case ok && w != kind && !(w == "dir" && strings.HasPrefix(kind, "dir")):
			t.Errorf("%s in the image is %s, want %s", name, kind, w)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("the image holds more than the binaries, the CA bundle and the user: %v", extra)
	}
	for name := range want {
		if _, ok := files.kinds[name]; !ok {
			t.Errorf("the image lacks %s", name)
		}
	}
	host, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err == nil && !bytes.Equal(files.data["etc/ssl/certs/ca-certificates.crt"], host) {
		t.Errorf("the image's CA bundle (%d bytes) is not the host's (%d bytes)", len(files.data["etc/ssl/certs/ca-certificates.crt"]), len(host))
	}
	if !strings.Contains(string(files.data["etc/passwd"]), "rokup:x:65532:65532:") {
		t.Errorf("/etc/passwd names no rokup user 65532:\n%s", files.data["etc/passwd"])
	}
}

// podmanOwn is what podman adds to every container's file system.
func podmanOwn(name string) bool {
	switch name {
	case "dev/", "proc/", "sys/", "run/", "etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv":
		return true
	}
	return false
}

// checkStatic fails unless path is an ELF executable with no interpreter
// and no shared library: what CGO_ENABLED=0 makes.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked (it has an interpreter)", filepath.Base(path))
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", filepath.Base(path), libs)
	}
}

type fsList struct {
	kinds map[string]string // "file", "dir", "dir 1777", "link"
	data  map[string][]byte // small files' contents
}

// exportFS lists a container's file system as `podman export` writes it.
func exportFS(t *testing.T, img Image) fsList {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := podman(ctx, "create", img.Name)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	defer podman(context.Background(), "rm", "-f", id)
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, podmanGlobal...), "export", id)...)
	var tarball, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &tarball, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("podman export: %v\n%s", err, stderr.String())
	}
	l := fsList{kinds: map[string]string{}, data: map[string][]byte{}}
	tr := tar.NewReader(&tarball)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		switch h.Typeflag {
		case tar.TypeDir:
			name = strings.TrimSuffix(name, "/") + "/"
			kind := "dir"
			if h.FileInfo().Mode()&os.ModeSticky != 0 && h.FileInfo().Mode().Perm() == 0o777 {
				kind = "dir 1777"
			}
			l.kinds[name] = kind
		case tar.TypeReg:
			l.kinds[name] = "file"
			if h.Size < 1<<20 {
				b, _ := io.ReadAll(tr)
				l.data[name] = b
			}
		default:
			l.kinds[name] = "link"
		}
	}
	delete(l.kinds, "/")
	return l
}
