package upgrade

import (
	"testing"
	"time"

	"github.com/rokup/rokup/hooks"
)

// A resumed step's rate is reckoned from its current attempt, not from a
// failed attempt an hour before.
func TestRateIsOfTheCurrentAttempt(t *testing.T) {
	now := time.Now()
	s := Step{Started: now.Add(-time.Hour), AttemptStarted: now.Add(-2 * time.Second)}
	s.progress(hooks.Progress{Done: 1000, Total: 1000})
	if s.PerSecond < 100 {
		t.Fatalf("%.1f/s: reckoned from the first attempt, want about 500/s", s.PerSecond)
	}
}

// Entries skipped on purpose are kept apart from errors.
func TestSkippedIsNotAnError(t *testing.T) {
	var s Step
	s.progress(hooks.Progress{Done: 10, Errors: 1, Skipped: 6})
	if s.Errors != 1 || s.Skipped != 6 {
		t.Fatalf("errors %d, skipped %d; want 1 and 6", s.Errors, s.Skipped)
	}
}
