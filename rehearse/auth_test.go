package rehearse_test

import (
	"sort"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/rehearse"
	"github.com/rokup/rokup/seed"
)

// TestLiveRehearsalChecksTheUsersRights rehearses a live cluster with
// auth on as two users: one who may write everywhere, and one who may
// write the Gateway prefix only, whose missing rights are each named.
func TestLiveRehearsalChecksTheUsersRights(t *testing.T) {
	m := embed.NewTestMember(t)
	ctx := ctxT(t)
	admin := embed.NewTestClient(t, m.Endpoints())
	v2admin := embed.NewTestV2Client(t, m.Endpoints())
	if _, err := seed.Run(ctx, conn.NewKeysAPI(v2admin), seed.Config{Docs: 100, Objects: 40, Nodes: seed.Nodes(1), Seed: 9, Layout: seed.Layout{Dir: t.TempDir()}}); err != nil {
		t.Fatal(err)
	}
	// reader may read everything, and write the Gateway prefix only.
	if _, err := admin.RoleAdd(ctx, "gw-only"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		key, end string
		perm     clientv3.PermissionType
	}{{"\x00", "\x00", clientv3.PermissionType(clientv3.PermRead)}, {"/rok/gw/", clientv3.GetPrefixRangeEnd("/rok/gw/"), clientv3.PermissionType(clientv3.PermReadWrite)}} {
		if _, err := admin.RoleGrantPermission(ctx, "gw-only", p.key, p.end, p.perm); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.UserAdd(ctx, "reader", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UserGrantRole(ctx, "reader", "gw-only"); err != nil {
		t.Fatal(err)
	}
	// Auth on in v3 only: the rights the run needs are v3's (its one v2
	// write, the cleanup of /epochs, is v2 auth's, which etcd 3.5 keeps
	// apart and rokup does not check).
	if err := embed.EnableAuth(ctx, admin, nil, "rootpw", map[string]string{"rok": "s3cret"}); err != nil {
		t.Fatal(err)
	}

	problems := func(user string) []string {
		cfg := conn.Config{Endpoints: m.Endpoints(), User: user}
		cli, err := conn.V3(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		v2, err := conn.V2(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := rehearse.Run(ctx, rehearse.Options{Live: &rehearse.Live{V3: cli, V2: conn.NewKeysAPI(v2), Endpoints: m.Endpoints()}})
		if err != nil {
			t.Fatalf("as %s: %v", user, err)
		}
		var keys []string
		for _, p := range rep.Problems {
			if p.Check != "auth" || !strings.Contains(p.Detail, strings.Split(user, ":")[0]) {
				t.Errorf("as %s: %s", user, p)
			}
			keys = append(keys, p.Key)
		}
		sort.Strings(keys)
		return keys
	}
	if got := problems("rok:s3cret"); len(got) != 0 {
		t.Errorf("a user who may write everywhere: problems on %v", got)
	}
	if got, want := strings.Join(problems("reader:pw"), " "), "/epochs/ /libmap/epoch /rok/fence/gc /rok/upgrade/"; got != want {
		t.Errorf("a user who may write the Gateway prefix only: problems on %s, want %s", got, want)
	}
}
