package fencing

import "errors"

var (
	// ErrNotLeader is returned when a guarded write fails because the
	// writer's leadership term has ended: its election key is gone or was
	// re-created by another campaign.
	ErrNotLeader = errors.New("fencing: not leader")
	// ErrFenced is returned when GC is fenced off (the fence key exists).
	ErrFenced = errors.New("fencing: GC is fenced")
)
