package fencing_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
)

// exampleEtcd starts a throw-away etcd member for one example.
func exampleEtcd() (*clientv3.Client, func()) {
	dir, err := os.MkdirTemp("", "fencing-example-")
	if err != nil {
		log.Fatal(err)
	}
	ports, err := embed.FreePorts(2)
	if err != nil {
		log.Fatal(err)
	}
	m, err := embed.Start(context.Background(), embed.Config{
		Name: "example", DataDir: dir, NoFsync: true,
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
	})
	if err != nil {
		log.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: m.Endpoints()})
	if err != nil {
		log.Fatal(err)
	}
	return cli, func() { cli.Close(); m.Close(); os.RemoveAll(dir) }
}

// The upgrade sets the fence; a GC that starts meanwhile refuses, naming
// who holds it and why; only the holder lifts it.
func ExampleFence() {
	cli, stop := exampleEtcd()
	defer stop()
	ctx := context.Background()

	fence := fencing.NewFence(cli)
	if _, err := fence.Set(ctx, "upgrade/upgrade-0.14", "Rok 0.14 upgrade"); err != nil {
		log.Fatal(err)
	}
	err := fence.Check(ctx)
	fmt.Println(errors.Is(err, fencing.ErrFenced))

	_, err = fence.Release(ctx, "operator")
	fmt.Println(errors.Is(err, fencing.ErrHeld))

	released, err := fence.Release(ctx, "upgrade/upgrade-0.14")
	fmt.Println(released, err)
	// Output:
	// true
	// true
	// true <nil>
}

// A GC registers its instance, and puts the fence's and its own compares
// in every deletion: once the fence is set, the next deletion fails.
func ExampleRegister() {
	cli, stop := exampleEtcd()
	defer stop()
	ctx := context.Background()

	in, err := fencing.Register(ctx, cli, "node-1")
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close(ctx)
	// The instance key lives as long as the GC's lease.
	keys, err := cli.Get(ctx, fencing.DefaultInstancePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(keys.Kvs[0].Key))

	fence := fencing.NewFence(cli)
	deleteEpoch := func(id string) bool {
		resp, err := cli.Txn(ctx).
			If(fence.AbsentCmp(), in.Cmp()).
			Then(clientv3.OpDelete("/epochs/chocks-idx/node-1/" + id)).
			Commit()
		if err != nil {
			log.Fatal(err)
		}
		return resp.Succeeded
	}
	fmt.Println(deleteEpoch("1"))
	if _, err := fence.Set(ctx, "upgrade/r1", "upgrade"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(deleteEpoch("2"))
	// Output:
	// /rok/gc/instances/node-1
	// true
	// false
}

// A master campaigns, and guards each master-only write with its term. Once
// another master has been elected, the old term's writes fail.
func ExampleCampaign() {
	cli, stop := exampleEtcd()
	defer stop()
	ctx := context.Background()

	s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
	if err != nil {
		log.Fatal(err)
	}
	_, g, err := fencing.Campaign(ctx, s, "/rok/upgrade/leader/", "node-1")
	if err != nil {
		log.Fatal(err)
	}
	write := func() error {
		resp, err := cli.Txn(ctx).If(g.Cmps()...).Then(clientv3.OpPut("/rok/upgrade/runs/r1", "step 2")).Commit()
		if err != nil {
			return err
		}
		if !resp.Succeeded {
			return g.Check(ctx, cli)
		}
		return nil
	}
	fmt.Println(write())
	s.Close() // the term ends: the election key goes with the lease
	err = write()
	fmt.Println(errors.Is(err, fencing.ErrNotLeader))
	// Output:
	// <nil>
	// true
}
