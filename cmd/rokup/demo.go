package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
)

// newDemoCmd is the foundation's demo: an embedded etcd in a temp dir that
// serves both stores. Issue 7 grows it into the whole seeded upgrade.
func newDemoCmd(f *cli.Flags) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the upgrade on an embedded etcd with a seeded installation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFoundationDemo(cmd.Context(), cmd.OutOrStdout(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the data dir for inspection")
	return cmd
}

func runFoundationDemo(ctx context.Context, w io.Writer, keep bool) error {
	dir, err := os.MkdirTemp("", "rokup-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	ports, err := embed.FreePorts(2)
	if err != nil {
		return err
	}
	m, err := embed.Start(ctx, embed.Config{
		Name: "demo", DataDir: dir,
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(w, "embedded etcd serving %s in %s\n", m.ClientURL(), dir)
	cfg := conn.Config{Endpoints: m.Endpoints(), DialTimeout: 5 * time.Second}
	v3, err := conn.V3(ctx, cfg)
	if err != nil {
		return err
	}
	defer v3.Close()
	v2c, err := conn.V2(cfg)
	if err != nil {
		return err
	}
	keys := clientv2.NewKeysAPI(v2c)
	if _, err := keys.Set(ctx, "/rok/gw/demo", "written through v2", nil); err != nil {
		return conn.V2Error(err)
	}
	if _, err := v3.Put(ctx, "/rok/gw/demo", "written through v3"); err != nil {
		return err
	}
	r2, err := keys.Get(ctx, "/rok/gw/demo", nil)
	if err != nil {
		return conn.V2Error(err)
	}
	r3, err := v3.Get(ctx, "/rok/gw/demo")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "v2 /rok/gw/demo = %q\nv3 /rok/gw/demo = %q\n", r2.Node.Value, r3.Kvs[0].Value)
	fmt.Fprintln(w, "the same key lives in two separate keyspaces: that is what the 0.14 upgrade moves across")
	return nil
}
