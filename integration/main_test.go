package integration

import (
	"os"
	"testing"

	"github.com/rokup/rokup/integration/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}
