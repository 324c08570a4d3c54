package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/gateway"
)

func main() { cli.Execute(newRoot()) }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "rok-gw-manage",
		Short: "Manage the Rok Gateway's store and its migrations",
		Long: `Manage the Rok Gateway's store and its migrations.

Rok 0.14 moves every Gateway document from the etcd v2 store to the v3 store
(migration gw.0002_v3_store). Stop the Gateway (gunicorn and daemons), then run
"rok-gw-manage migrate". "showmigrations" lists what is applied.`,
	}
	f := cli.AddFlags(root, "ROK_ETCD_ENDPOINTS")
	root.AddCommand(newMigrateCmd(f), newShowCmd(f), newRepublishCmd(f))
	return root
}

// stores connects both stores and proves v2 answers, so a server without
// --enable-v2 is one clear error before anything else happens.
func stores(ctx context.Context, f *cli.Flags) (*clientv3.Client, clientv2.KeysAPI, error) {
	if err := f.Validate(); err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(f.GWPrefix, "/") {
		return nil, nil, cli.Usagef("--gw-prefix must start with /, not %q", f.GWPrefix)
	}
	c3, err := f.V3(ctx)
	if err != nil {
		return nil, nil, err
	}
	c2, err := f.V2()
	if err != nil {
		c3.Close()
		return nil, nil, err
	}
	kapi := conn.NewKeysAPI(c2)
	if err := gateway.CheckV2(ctx, kapi, f.GWPrefix); err != nil {
		c3.Close()
		return nil, nil, err
	}
	return c3, kapi, nil
}

func executor(c3 *clientv3.Client, kapi clientv2.KeysAPI, f *cli.Flags, move gateway.MoveOptions) (*gateway.Executor, error) {
	return gateway.NewExecutor(gateway.GW(), gateway.Env{V3: c3, V2: kapi, Prefix: f.GWPrefix, Move: move})
}
