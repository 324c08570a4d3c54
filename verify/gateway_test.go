package verify_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/verify"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Gateway expects in v3 exactly the v2 documents the move verified: one
// written to v2 afterwards is set apart (a Gateway left running is the
// operator's to stop), one the move should have copied is still caught.
func TestGatewayCheckHoldsTheMoveToTheIndexItVerified(t *testing.T) {
	ctx := context.Background()
	cli, v2, man := migrated(t, 200, 3, "gw", "0002_v3_store")
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

// Gateway checks the prefix the other way too: a v3 key under it that is
// neither a v2 document nor a ledger entry is a document to Gateway 0.14,
// and fails the check; the ledger's entries do not.
func TestGatewayCheckFlagsKeysThatAreNotDocuments(t *testing.T) {
	ctx := context.Background()
	cli, v2, man := migrated(t, 100, 5, "", "")
	c := verify.Gateway(ctx, cli, v2, man)
	checkVerdict(t, c, "")
	if want := "nothing else but 3 ledger entries"; !strings.Contains(c.Detail, want) {
		t.Errorf("detail %q does not mention %q", c.Detail, want)
	}

	for _, extra := range []string{
		man.GWPrefix + "/_rokup/moved//18a1b2c3d4e5f601-00000001", // an older rokup's marker
		man.GWPrefix + "/_migrations/gw/0002_v3_store/nested",
		man.GWPrefix + "/not/in/v2",
	} {
		if _, err := cli.Put(ctx, extra, "x"); err != nil {
			t.Fatal(err)
		}
		checkVerdict(t, verify.Gateway(ctx, cli, v2, man), extra)
		if _, err := cli.Delete(ctx, extra); err != nil {
			t.Fatal(err)
		}
	}
	checkVerdict(t, verify.Gateway(ctx, cli, v2, man), "")
}

// migrated seeds a member with docs Gateway documents (seed seedN) and
// migrates app to target (every app to its last migration for "", "").
func migrated(t *testing.T, docs int, seedN int64, app, target string) (*clientv3.Client, clientv2.KeysAPI, *seed.Manifest) {
	t.Helper()
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	v2 := embed.NewTestV2(t, m.Endpoints())
	man, err := seed.Run(ctx, v2, seed.Config{Docs: docs, Objects: 10, Nodes: seed.Nodes(1), Seed: seedN, Layout: seed.Layout{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := gateway.NewExecutor(gateway.GW(), gateway.Env{V3: cli, V2: v2, Prefix: man.GWPrefix})
	if err != nil {
		t.Fatal(err)
	}
	applied, _ := ex.Applied(ctx)
	plan, _ := ex.Plan(app, target, applied)
	if _, err := ex.Run(ctx, plan, gateway.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	return cli, v2, man
}
