package seed_test

import (
	"fmt"

	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// Where a seeded installation keeps each node's storage.
func ExampleLayout() {
	l := seed.Layout{Dir: "/srv/rehearsal"}
	for _, node := range seed.Nodes(2) {
		fmt.Println(node, l.Node(node).Dir(libmap.ChocksIdx))
	}
	fmt.Println("shared", l.Node("node-1").Path(libmap.MapsCA, "5e3f0a"))
	// Output:
	// node-1 /srv/rehearsal/node-1/nodelocal/chocks-idx
	// node-2 /srv/rehearsal/node-2/nodelocal/chocks-idx
	// shared /srv/rehearsal/local/maps-ca/5e/5e3f0a
}
