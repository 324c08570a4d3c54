package backoff

import (
	"context"
	"testing"
	"time"
)

func TestBackoffDoublesUpToItsCapAndResets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Wait returns at once; only the delays are checked
	b := Backoff{First: time.Second, Max: 3 * time.Second}
	var got []time.Duration
	for range 4 {
		b.Wait(ctx)
		got = append(got, b.next)
	}
	want := []time.Duration{2 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays after each wait %v, want %v", got, want)
		}
	}
	b.Reset()
	var zero Backoff
	zero.Wait(ctx)
	b.Wait(ctx)
	if b.next != 2*time.Second || zero.next != 2*DefaultFirst {
		t.Fatalf("after Reset next is %v, want 2s; a zero Backoff's next is %v, want %v", b.next, zero.next, 2*DefaultFirst)
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { Sleep(ctx, time.Hour); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute): // turns a never into a failure; judges no speed
		t.Fatal("Sleep outlived its context")
	}
}
