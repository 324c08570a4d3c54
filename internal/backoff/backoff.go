// Package backoff holds the one retry delay of rokup's long-running loops:
// a wait that ends early when its context does, and a capped doubling of
// it across consecutive failures.
package backoff

import (
	"context"
	"time"
)

// The delays a zero Backoff uses: short enough that an etcd blip costs
// nothing, capped so that a long outage is still retried every few seconds.
const (
	DefaultFirst = 100 * time.Millisecond
	DefaultMax   = 5 * time.Second
)

// Backoff doubles its delay after each failed attempt, from First up to
// Max. The zero value waits DefaultFirst, then up to DefaultMax. It is not
// safe for concurrent use: each retry loop has its own.
type Backoff struct {
	First time.Duration // the first delay; 0 means DefaultFirst
	Max   time.Duration // the cap; 0 means DefaultMax

	next time.Duration
}

// Wait sleeps the current delay, or until ctx ends, and doubles the delay
// for the next failure.
func (b *Backoff) Wait(ctx context.Context) {
	d := b.Delay()
	Sleep(ctx, d)
	limit := b.Max
	if limit <= 0 {
		limit = DefaultMax
	}
	b.next = min(2*d, limit)
}

// Delay is how long the next Wait sleeps (for the log line before it).
func (b *Backoff) Delay() time.Duration {
	switch {
	case b.next > 0:
		return b.next
	case b.First > 0:
		return b.First
	}
	return DefaultFirst
}

// Reset starts over from First: call it after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits d, or until ctx ends, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
