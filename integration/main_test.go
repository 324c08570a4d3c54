package integration

import (
	"os"
	"testing"

	"github.com/rokup/rokup/integration/harness"
)

func TestMain(m *testing.M) {
	if os.Getenv("ROKUP_TEST_COMPOSER") != "" {
		os.Exit(runComposer()) // a composer process of gcwindow_test.go
	}
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}
