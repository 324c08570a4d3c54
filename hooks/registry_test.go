package hooks_test

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rokup/rokup/hooks"
)

type named struct {
	name string
	at   hooks.Placement
}

func (h named) Name() string                          { return h.name }
func (h named) Placement() hooks.Placement            { return h.at }
func (h named) Run(context.Context, hooks.Task) error { return nil }
func newA() named                                     { return named{"gc-fence", hooks.Leader} }
func newB() named                                     { return named{"epochs-nodelocal", hooks.EveryNode} }
func newC() named                                     { return named{"epochs-all", hooks.OneNode} }
func newDup() named                                   { return named{"gc-fence", hooks.EveryNode} }

func TestRegistryFindsEveryHookOfTheGroup(t *testing.T) {
	var reg *hooks.Registry
	app := fxtest.New(t,
		hooks.Module,
		fx.Provide(hooks.As(newA), hooks.As(newB), hooks.As(newC)),
		fx.Populate(&reg),
	)
	app.RequireStart()
	defer app.RequireStop()
	want := []string{"epochs-all", "epochs-nodelocal", "gc-fence"}
	if got := reg.Names(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("registry has %v, want %v", got, want)
	}
	h, err := reg.Get("epochs-nodelocal")
	if err != nil || h.Placement() != hooks.EveryNode {
		t.Fatalf("Get: %v %v", h, err)
	}
	if _, err := reg.Get("nope"); !errors.Is(err, hooks.ErrUnknownHook) {
		t.Fatalf("unknown hook: %v", err)
	}
}

func TestDuplicateHookNameFailsStartup(t *testing.T) {
	var reg *hooks.Registry
	app := fx.New(
		fx.NopLogger,
		hooks.Module,
		fx.Provide(hooks.As(newA), hooks.As(newDup)),
		fx.Populate(&reg),
	)
	if err := app.Err(); !errors.Is(err, hooks.ErrDuplicateHook) {
		t.Fatalf("want ErrDuplicateHook at startup, got %v", err)
	}
}
