package sidecar_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/sidecar"
	"github.com/rokup/rokup/upgrade"
)

// backupHook is a site's own step: a hooks.Hook, run on the elected
// master. Run must be idempotent: after a crash it runs again.
type backupHook struct{}

func (backupHook) Name() string               { return "site-backup" }
func (backupHook) Placement() hooks.Placement { return hooks.Leader }

func (backupHook) Run(ctx context.Context, task hooks.Task) error {
	fmt.Printf("site-backup runs for %s on %s\n", task.RunID, task.Node)
	task.Progress(hooks.Progress{Done: 1, Total: 1})
	return nil
}

// A plugin registers its step with sidecar.As; an operator runs it by name
// with a control write of action "task".
func ExampleAs() {
	dir, err := os.MkdirTemp("", "sidecar-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ports, err := embed.FreePorts(2)
	if err != nil {
		log.Fatal(err)
	}
	etcd := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	cfg := sidecar.Config{Node: "node-1", NodelocalRoot: dir, LocalRoot: dir, Embed: &embed.Config{
		Name: "node-1", DataDir: dir + "/etcd", NoFsync: true,
		ClientURL: etcd, PeerURL: fmt.Sprintf("http://127.0.0.1:%d", ports[1])}}

	app := sidecar.New(cfg, zap.NewNop(),
		fx.Provide(sidecar.As(func() hooks.Hook { return backupHook{} })))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := app.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer app.Stop(context.Background())

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd}})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	control := `{"id": "backup-1", "action": "task", "hook": "site-backup"}`
	if _, err := cli.Put(ctx, upgrade.DefaultKeys.Control(), control); err != nil {
		log.Fatal(err)
	}
	for {
		run, _, err := upgrade.NewStore(cli, upgrade.DefaultKeys).Run(ctx, "backup-1")
		if ctx.Err() != nil {
			log.Fatal("the run did not end: ", err)
		}
		if err == nil && upgrade.Terminal(run.State) {
			fmt.Println("run backup-1:", run.State)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Output:
	// site-backup runs for backup-1 on node-1
	// run backup-1: done
}
