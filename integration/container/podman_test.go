package container

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/integration/harness"
)

// podmanGlobal are the flags every podman call takes here: runc, because
// crun refuses this machine's cgroups and limits, and cgroupfs, because
// no systemd runs to manage cgroups.
var podmanGlobal = []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}

// runFlags are what every container started here gets: the host network
// (the sidecars reach etcd on 127.0.0.1) and limits this machine lets a
// container set.
var runFlags = []string{"--net", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

// podman runs podman with args and returns its combined output.
func podman(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, podmanGlobal...), args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("podman %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// Image is what `make image` built for this test binary.
type Image struct {
	Name    string // localhost/rokup-test:…
	Version string // the VERSION it was built with
	Dir     string // its build context: rootfs/ with the binaries
}

var (
	imageOnce sync.Once
	image     Image
	imageErr  error // the build failed: every test that needs it fails
	imageSkip error // podman cannot run containers here: the tests skip
)

// needImage returns the image, built once per test binary with
// `make image`. Without podman and runc, or where podman cannot run a
// container at all, the test skips naming the exact error (fails in CI).
func needImage(t *testing.T) Image {
	t.Helper()
	imageOnce.Do(buildImage)
	if imageSkip != nil {
		embed.Unavailable(t, imageSkip)
	}
	if imageErr != nil {
		t.Fatal(imageErr)
	}
	return image
}

func buildImage() {
	for _, bin := range []string{"podman", "runc", "make"} {
		if _, err := exec.LookPath(bin); err != nil {
			imageSkip = fmt.Errorf("%s not found (make deps installs podman and runc on Debian): %w", bin, err)
			return
		}
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		imageErr = err
		return
	}
	dir, err := os.MkdirTemp("", "rokup-image-")
	if err != nil {
		imageErr = err
		return
	}
	version := fmt.Sprintf("0.0.0-test.%d", os.Getpid())
	image = Image{Name: "localhost/rokup-test:" + version[len("0.0.0-test."):], Version: version, Dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", root, "image",
		"VERSION="+version, "IMAGE="+image.Name, "IMAGE_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		imageErr = fmt.Errorf("make image: %w\n%s", err, out)
		return
	}
	// Can this machine run a container at all? If not, say exactly why.
	if out, err := podman(ctx, append(append([]string{"run", "--rm"}, runFlags...), image.Name, "rokup", "version")...); err != nil {
		imageSkip = fmt.Errorf("podman cannot run a container here: %v", err)
		_ = out
	}
}

func removeImage() {
	if image.Name == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = podman(ctx, "rmi", "-f", image.Name)
	os.RemoveAll(image.Dir)
}

// Container is one container started from the image, which the test can
// kill and start again on the same volumes.
type Container struct {
	Name string
}

// Run starts a detached container named name.
func Run(t *testing.T, img Image, name string, volumes []string, cmd ...string) *Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"run", "-d", "--name", name}, runFlags...)
	for _, v := range volumes {
		args = append(args, "--volume", v)
	}
	args = append(append(args, img.Name), cmd...)
	_, _ = podman(ctx, "rm", "-f", name) // a leftover of an interrupted run
	if _, err := podman(ctx, args...); err != nil {
		t.Fatal(err)
	}
	c := &Container{Name: name}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = podman(ctx, "rm", "-f", "-t", "0", name)
	})
	return c
}

// Kill sends SIGKILL (podman kill) and waits until the container exited.
func (c *Container) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := podman(ctx, "kill", "--signal", "KILL", c.Name); err != nil {
		return err
	}
	_, err := podman(ctx, "wait", c.Name)
	return err
}

// Start starts the exited container again, same command and volumes.
func (c *Container) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := podman(ctx, "start", c.Name)
	return err
}

// Stop sends SIGTERM (podman stop; SIGKILL after timeout) and returns the
// container's exit code.
func (c *Container) Stop(timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Minute)
	defer cancel()
	if _, err := podman(ctx, "stop", "-t", fmt.Sprint(int(timeout.Seconds())), c.Name); err != nil {
		return -1, err
	}
	out, err := podman(ctx, "inspect", "--format", "{{.State.ExitCode}}", c.Name)
	if err != nil {
		return -1, err
	}
	var code int
	_, err = fmt.Sscan(strings.TrimSpace(out), &code)
	return code, err
}

// Logs is the tail of the container's output, for a failure message.
func (c *Container) Logs() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := podman(ctx, "logs", "--tail", "40", c.Name)
	if err != nil {
		return err.Error()
	}
	return out
}
