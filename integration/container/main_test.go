// Package container runs rokup as operators ship it: the OCI image that
// `make image` builds (deploy/image/Containerfile), started with podman on
// runc. Its tests build the image once per test binary from the working
// tree, check what is in it, and run a whole upgrade with three sidecars
// as containers against Debian's etcd 3.4 (integration/harness).
//
// They need podman and runc (make deps installs them on Debian) and
// etcd 3.4; without them they skip and say why, except under CI=true,
// where they fail. A package of its own, so its image build and its
// containers have their own test timeout.
package container

import (
	"os"
	"testing"

	"github.com/rokup/rokup/integration/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	removeImage()
	harness.RemoveBinaries()
	os.Exit(code)
}
