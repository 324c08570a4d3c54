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
