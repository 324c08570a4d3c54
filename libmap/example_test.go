package libmap_test

import (
	"context"
	"fmt"
	"os"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/libmap"
)

// Stamping a node's chocks, then the composer's cache look-up.
func ExampleCache_Touch() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "libmap-example")
	defer os.RemoveAll(dir)
	ports, _ := embed.FreePorts(2)
	m, err := embed.Start(ctx, embed.Config{DataDir: dir, NoFsync: true,
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1])})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	cli, _ := clientv3.New(clientv3.Config{Endpoints: m.Endpoints()})
	defer cli.Close()

	cache := libmap.New(cli)
	s, _ := cache.NewStamper(ctx, libmap.ChocksCA, "", libmap.StampConfig{})
	_ = s.Add("5e3f")
	st, _ := s.Close()
	fmt.Println("stamped", st.Stamped, "with epoch", st.Epoch)

	exists, _ := cache.Touch(ctx, libmap.ChocksCA, "", "5e3f")
	fmt.Println("5e3f exists:", exists)
	exists, _ = cache.Touch(ctx, libmap.ChocksCA, "", "0bad")
	fmt.Println("0bad exists:", exists)
	// Output:
	// stamped 1 with epoch 1
	// 5e3f exists: true
	// 0bad exists: false
}
