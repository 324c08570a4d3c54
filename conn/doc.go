// Package conn turns the command-line connection settings shared by every
// rokup command into etcd clients: a v3 client for the new store and a v2
// client for the legacy one, with TLS and auth, and a reachability check so
// that a down etcd is a clear error within the dial timeout, never a hang.
//
// Start here: Config holds the settings (docs/design.md#command-lines); V3
// dials and proves etcd answers, NewV3 does not wait (a daemon starting
// before its etcd); V2 builds the legacy client, and NewKeysAPI wraps it in
// Keys, whose Read fetches a directory level or a whole subtree in one
// request with a byte budget (the Gateway move's walk, keys.go). V2Error
// turns v2 errors into ones an operator can act on (ErrV2Disabled,
// ErrUnreachable).
package conn
