package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func noop(context.Context, *Env) (Result, error) { return Result{}, nil }

func TestGraphErrors(t *testing.T) {
	cases := []struct {
		name string
		migs []Migration
		want error
		text string
	}{
		{"cycle", []Migration{
			{App: "shop", Name: "0001_a", Deps: []Key{{"shop", "0003_c"}}, Forward: noop},
			{App: "shop", Name: "0002_b", Deps: []Key{{"shop", "0001_a"}}, Forward: noop},
			{App: "shop", Name: "0003_c", Deps: []Key{{"shop", "0002_b"}}, Forward: noop},
		}, ErrCycle, "shop.0001_a -> shop.0003_c -> shop.0002_b -> shop.0001_a"},
		{"missing dependency", []Migration{
			{App: "shop", Name: "0002_b", Deps: []Key{{"shop", "0001_gone"}}, Forward: noop},
		}, ErrDependency, "shop.0002_b depends on shop.0001_gone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewLoader()
			for _, m := range tc.migs {
				r.MustRegister(m)
			}
			_, err := NewGraph(r)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
}

func TestPlanRejectsUnknownAppAndTargetListingTheValidOnes(t *testing.T) {
	ex := &Executor{Loader: GW()}
	g, err := NewGraph(ex.Loader)
	if err != nil {
		t.Fatal(err)
	}
	ex.Graph = g
	_, err = ex.Plan("shop", "", nil)
	if !errors.Is(err, ErrUnknownApp) || !strings.Contains(err.Error(), "apps: gw") {
		t.Errorf("unknown app: %v", err)
	}
	_, err = ex.Plan("gw", "0009_nope", nil)
	if !errors.Is(err, ErrUnknownMigration) || !strings.Contains(err.Error(), "0001_initial, 0002_v3_store, 0003_published_buckets, 0004_move_state") {
		t.Errorf("unknown target: %v", err)
	}
	// v2-era entries cannot be reverted: rokup never writes v2.
	_, err = ex.Plan("gw", "zero", map[Key]Source{Initial: InV2})
	if !errors.Is(err, ErrIrreversible) {
		t.Errorf("revert of a v2 ledger entry: %v", err)
	}
}

func TestRegisterRejectsDuplicatesAndBadNames(t *testing.T) {
	r := NewLoader()
	r.MustRegister(Migration{App: "gw", Name: "0001_initial", Forward: noop})
	for _, m := range []Migration{
		{App: "gw", Name: "0001_initial", Forward: noop},
		{App: "gw", Name: "a/b", Forward: noop},
		{App: "gw", Name: "0002_x"},
	} {
		if err := r.Register(m); err == nil {
			t.Errorf("registered %s.%s", m.App, m.Name)
		}
	}
}

// Migrating an app brings it to its leaves, dependencies first; a target
// already applied means reverting what came after it.
func ExampleExecutor_Plan() {
	ex, _ := NewExecutor(GW(), Env{})
	applied := map[Key]Source{Initial: InV2}
	plan, _ := ex.Plan("gw", "", applied)
	fmt.Println(plan)
	applied[V3Store], applied[Published] = InV3, InV3
	plan, _ = ex.Plan("gw", "0001_initial", applied)
	fmt.Println(plan)
	// Output:
	// [Apply gw.0002_v3_store Apply gw.0003_published_buckets Apply gw.0004_move_state]
	// [Unapply gw.0003_published_buckets Unapply gw.0002_v3_store]
}
