package hooks_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rokup/rokup/hooks"
)

type named struct {
	name string
	at   hooks.Placement
}

func (h named) Name() string                          { return h.name }
func (h named) Placement() hooks.Placement            { return h.at }
func (h named) Run(context.Context, hooks.Task) error { return nil }

func TestRegistryFindsEveryHookByName(t *testing.T) {
	reg, err := hooks.NewRegistry([]hooks.Hook{
		named{"gc-fence", hooks.Leader}, named{"epochs-nodelocal", hooks.EveryNode}, named{"epochs-all", hooks.OneNode}})
	if err != nil {
		t.Fatal(err)
	}
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

func TestRegistryRefusesTwoHooksWithOneName(t *testing.T) {
	_, err := hooks.NewRegistry([]hooks.Hook{named{"gc-fence", hooks.Leader}, named{"gc-fence", hooks.EveryNode}})
	if !errors.Is(err, hooks.ErrDuplicateHook) {
		t.Fatalf("want ErrDuplicateHook, got %v", err)
	}
}
