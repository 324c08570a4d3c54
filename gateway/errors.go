package gateway

import "errors"

var (
	// ErrUnknownApp is returned for an app no migration belongs to.
	ErrUnknownApp = errors.New("gateway: unknown app")
	// ErrUnknownMigration is returned for a migration name an app lacks.
	ErrUnknownMigration = errors.New("gateway: unknown migration")
	// ErrDependency is returned for a dependency on a missing migration.
	ErrDependency = errors.New("gateway: missing dependency")
	// ErrCycle is returned when migrations depend on each other in a loop.
	ErrCycle = errors.New("gateway: dependency cycle")
	// ErrIrreversible is returned when a plan would revert a migration that
	// has no backward function, or one recorded only in the v2 ledger
	// (rokup never modifies v2).
	ErrIrreversible = errors.New("gateway: cannot revert")
	// ErrGatewayAlive is returned when a Gateway liveness key exists.
	ErrGatewayAlive = errors.New("gateway: a Gateway is running")
	// ErrConflict is returned when v3 keys already hold other bytes than
	// the v2 documents of the same name.
	ErrConflict = errors.New("gateway: v3 keys hold other bytes")
	// ErrExtra is returned when v3 holds keys under the prefix that are
	// no v2 document (nor a ledger entry): Gateway 0.14 would read them
	// as documents v2 never had.
	ErrExtra = errors.New("gateway: v3 keys that v2 does not hold")
	// ErrTooLarge is returned for a document that cannot fit in one request.
	ErrTooLarge = errors.New("gateway: document larger than a request may be")
	// ErrVerify is returned when the copy does not match v2 after the move,
	// most often because v2 was written to while the move ran.
	ErrVerify = errors.New("gateway: verification failed")
	// ErrLagging is returned when an etcd member answered the move's v2
	// reads from behind the cluster's index (it was catching up): what it
	// showed may lack writes already made. Re-running reads again.
	ErrLagging = errors.New("gateway: v2 read from a lagging etcd member")
	// ErrNotFound is returned by Republish for a bucket that does not exist.
	ErrNotFound = errors.New("gateway: bucket not found")
)
