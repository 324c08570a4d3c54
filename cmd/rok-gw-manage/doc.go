// Command rok-gw-manage manages the Rok Gateway's store: its Django-style
// migrations, including the move from the etcd v2 store to v3
// (docs/design.md#gateway-move).
//
// Start here: main.go builds the commands; migrate.go, showmigrations.go
// and republish.go each drive gateway.Executor or gateway.Republish.
package main
