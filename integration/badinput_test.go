package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/upgrade"
)

// Every malformed control write is recorded as rejected with its reason,
// and nothing of the upgrade happens: no fence, no v3 documents, no epochs,
// the v2 cache left in place.
func TestMalformedControlKeysChangeNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the fault matrix in -short mode")
	}
	t.Parallel()
	e := harness.New(t, harness.Options{Docs: 50, Objects: 100, Seed: 3})
	e.StartSidecars()
	ctx := context.Background()
	for _, tc := range []struct{ name, value, reason string }{
		{"not JSON", `upgrade please`, "not a JSON request object"},
		{"empty value", ``, "not a JSON request object"},
		{"an array", `[{"id":"u","action":"upgrade"}]`, "not a JSON request object"},
		{"a field of the wrong type", `{"id":"u","action":"upgrade","nodes":"node-1"}`, "not a JSON request object"},
		{"an unknown field", `{"id":"u","action":"upgrade","colour":"red"}`, "unknown field"},
		{"trailing data", `{"id":"u","action":"upgrade"} {"id":"v"}`, "trailing data"},
		{"no id", `{"action":"upgrade"}`, `"id" is empty`},
		{"an id that is a path", `{"id":"../../etc","action":"upgrade"}`, "must be 1-128 letters"},
		{"no action", `{"id":"u"}`, `"action" is missing`},
		{"an unknown action", `{"id":"u","action":"destroy"}`, "is not one of upgrade, abort, task"},
		{"an unknown mode", `{"id":"u","action":"upgrade","mode":"remote"}`, `mode "remote"`},
		{"local mode on two nodes", `{"id":"u","action":"upgrade","mode":"local","nodes":["node-1","node-2"]}`, "local mode runs on one node"},
		{"a node named twice", `{"id":"u","action":"upgrade","nodes":["node-1","node-1"]}`, "named twice"},
		{"a bad node name", `{"id":"u","action":"upgrade","nodes":["node 1"]}`, "is not valid"},
		{"a node that never ran a sidecar", `{"id":"u","action":"upgrade","nodes":["node-9"]}`, `unknown node "node-9"`},
		{"a hook with an upgrade", `{"id":"u","action":"upgrade","hook":"gc-fence"}`, "go with action"},
		{"a task without a hook", `{"id":"u","action":"task"}`, `needs "hook"`},
		{"a task of an unknown hook", `{"id":"u","action":"task","hook":"rm-rf"}`, "unknown hook"},
		{"an abort with a mode", `{"id":"u","action":"abort","mode":"local"}`, "takes only"},
		{"an abort of no run", `{"id":"nope","action":"abort"}`, `no run "nope"`},
		{"an oversized request", `{"id":"u","action":"upgrade","x":"` + strings.Repeat("a", 70<<10) + `"}`, "more than the"},
	} {
		resp, err := e.Cli.Put(ctx, upgrade.DefaultKeys.Control(), tc.value)
		if err != nil {
			t.Fatal(err)
		}
		rev := resp.Header.Revision
		var got *upgrade.Run
		err = e.Until(30*time.Second, func(ctx context.Context) (bool, error) {
			runs, err := e.Store.Runs(ctx)
			for _, r := range runs {
				if r.ControlRev == rev {
					got = r
				}
			}
			return got != nil, err
		})
		switch {
		case err != nil:
			t.Errorf("%s: no record answers the control write at %d: %v", tc.name, rev, err)
		case got.State != upgrade.StateRejected:
			t.Errorf("%s: run %s is %s, want rejected", tc.name, got.ID, got.State)
		case !strings.Contains(got.Error, tc.reason):
			t.Errorf("%s: rejected with %q, want a reason mentioning %q", tc.name, got.Error, tc.reason)
		}
	}
	requireUntouched(t, e)
}

// requireUntouched checks that no step of the upgrade ran: no fence, no v3
// Gateway document, no epoch, the v2 epoch cache still there.
func requireUntouched(t *testing.T, e *harness.Env) {
	t.Helper()
	ctx := context.Background()
	for _, p := range []string{"/rok/fence/", e.Manifest.GWPrefix + "/", "/epochs/"} {
		resp, err := e.Cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 0 {
			t.Errorf("%d keys under %s in v3 after bad input, want none", resp.Count, p)
		}
	}
	if _, err := e.V2.Get(ctx, e.Manifest.V2Epochs, nil); err != nil {
		t.Errorf("the v2 epoch cache %s is gone after bad input: %v", e.Manifest.V2Epochs, err)
	}
}

// Wrong TLS material or a wrong password: each command says so clearly,
// exits 1, and writes nothing.
func TestWrongCredentialsChangeNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode")
	}
	t.Parallel()
	bin, err := harness.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, pki, other := embed.NewTestTLSMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The client certificate's CN is root: the admin client is root.
	good := conn.Config{Endpoints: m.Endpoints(), CACert: pki.CAFile, Cert: pki.ClientCert, Key: pki.ClientKey, DialTimeout: 5 * time.Second}
	cli, err := conn.V3(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	v2c, err := conn.V2(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := embed.EnableAuth(ctx, cli, v2c, "rootpw", map[string]string{"rok": "secret"}); err != nil {
		t.Fatal(err)
	}
	ep := m.Endpoints()[0]
	storage := filepath.Join(dir, "storage")
	roots := filepath.Join(dir, "roots") // an empty, valid storage tree
	for _, sc := range []string{"maps-uuid", "chocks-idx", "maps-ca", "chocks-ca"} {
		if err := os.MkdirAll(filepath.Join(roots, sc), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A TLS handshake refused shows as an unreachable etcd whose message
	// gives the handshake's own reason and points at the TLS flags.
	const tlsRefused = "check --cacert, --cert and --key"
	// Right TLS material: the CA, and a client certificate (CN root, so
	// the tests pass --user to be someone else).
	tlsOK := []string{"--cacert", pki.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey}
	with := func(cmd string, extra ...string) []string {
		return append(append([]string{cmd}, extra...), tlsOK...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a CA that did not sign the server", []string{"rokup", "start", "--cacert", other.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey, "--user", "rok:secret"}, tlsRefused},
		{"no client certificate", []string{"rokup", "start", "--cacert", pki.CAFile, "--user", "rok:secret"}, tlsRefused},
		{"a client certificate of another CA", []string{"rokup", "start", "--cacert", pki.CAFile, "--cert", other.ClientCert, "--key", other.ClientKey, "--user", "rok:secret"}, tlsRefused},
		{"a wrong password", with("rokup", "start", "--user", "rok:wrong"), "authentication failed"},
		{"an unknown user", with("rokup", "start", "--user", "nobody:secret"), "authentication failed"},
		{"a wrong password for the GC", with("rok-gc", "--user", "rok:wrong", "--ca", "--local-root", storage), "authentication failed"},
		{"a wrong password for the epoch update", with("rok-composer-tool", "epoch-update", "--all", "--user", "rok:wrong", "--local-root", roots, "--nodelocal-root", roots), "authentication failed"},
		{"a wrong CA for the Gateway migration", []string{"rok-gw-manage", "migrate", "--cacert", other.CAFile, "--cert", pki.ClientCert, "--key", pki.ClientKey, "--user", "rok:secret"}, tlsRefused},
		{"a wrong password for the seed", with("rokup", "seed", "--user", "rok:wrong", "--dir", storage), "insufficient credentials"},
	} {
		args := append(tc.args[1:], "--endpoints", ep, "--dial-timeout", "2s")
		out, code := runBin(t, filepath.Join(bin, tc.args[0]), args...)
		if code != 1 || !strings.Contains(strings.ToLower(out), tc.want) {
			t.Errorf("%s: %s exited %d with %q; want 1 and a message about %q", tc.name, tc.args[0], code, out, tc.want)
		}
	}
	resp, err := cli.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d keys written by commands that could not authenticate", resp.Count)
	}
	if _, err := os.Stat(storage); err == nil {
		if ents, _ := os.ReadDir(storage); len(ents) > 0 {
			t.Errorf("the seed wrote %d entries into %s without reaching etcd", len(ents), storage)
		}
	}
}

func runBin(t *testing.T, path string, args ...string) (string, int) {
	t.Helper()
	e := &harness.Env{Bin: filepath.Dir(path)}
	return e.ExecEnv(nil, filepath.Base(path), args...)
}
