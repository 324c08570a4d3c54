package fencing

import "errors"

var (
	// ErrNotLeader is returned when a guarded write fails because the
	// writer's leadership term has ended: its election key is gone or was
	// re-created by another campaign.
	ErrNotLeader = errors.New("fencing: not leader")
	// ErrFenced is returned when GC is fenced off (the fence key exists).
	ErrFenced = errors.New("fencing: GC is fenced")
	// ErrHeld is returned when the fence is held by another holder: Set
	// does not take it over, and Release without Force does not lift it.
	ErrHeld = errors.New("fencing: fence held by another holder")
	// ErrInstanceRunning is returned when a GC instance of the same node
	// (or the cluster-wide CA instance) is already registered.
	ErrInstanceRunning = errors.New("fencing: GC instance already running")
	// ErrInstanceLost is returned when a registered GC instance's key is
	// gone or changed: its lease expired, or someone removed it.
	ErrInstanceLost = errors.New("fencing: GC instance lost its registration")
)
