package verify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/verify"
)

// Gateway expects in v3 exactly the v2 documents the move verified: one
// written to v2 afterwards is set apart (a Gateway left running is the
// operator's to stop), one the move should have copied is still caught.
func TestGatewayCheckHoldsTheMoveToTheIndexItVerified(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	v2 := embed.NewTestV2(t, m.Endpoints())
	man, err := seed.Run(ctx, v2, seed.Config{Docs: 200, Objects: 10, Nodes: seed.Nodes(1), Seed: 3, Layout: seed.Layout{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := gateway.NewExecutor(gateway.GW(), gateway.Env{V3: cli, V2: v2, Prefix: man.GWPrefix})
	if err != nil {
		t.Fatal(err)
	}
	applied, _ := ex.Applied(ctx)
	plan, _ := ex.Plan("gw", "0002_v3_store", applied)
	if _, err := ex.Run(ctx, plan, gateway.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	checkVerdict(t, verify.Gateway(ctx, cli, v2, man), "")

	late := man.GWPrefix + "/late/doc"
	if _, err := v2.Set(ctx, late, "written after the move", nil); err != nil {
		t.Fatal(err)
	}
	c := verify.Gateway(ctx, cli, v2, man)
	checkVerdict(t, c, "")
	if want := "1 written to v2 after the move verified"; !strings.Contains(c.Detail, want) {
		t.Fatalf("detail %q does not mention %q", c.Detail, want)
	}

	// A document the move did verify, gone from v3: caught.
	moved := man.Buckets[0]
	if _, err := cli.Delete(ctx, moved); err != nil {
		t.Fatal(err)
	}
	checkVerdict(t, verify.Gateway(ctx, cli, v2, man), moved+": missing in v3")
}
