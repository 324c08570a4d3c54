package cli

import "testing"

// The peak resident memory is this process's, and grows when it does.
func TestPeakRSSGrowsWithTheProcess(t *testing.T) {
	before := PeakRSSMiB()
	if before <= 0 {
		t.Fatalf("peak RSS %v MiB", before)
	}
	b := make([]byte, 64<<20)
	for i := range b {
		b[i] = 1 // touch every page: resident, not only reserved
	}
	if after := PeakRSSMiB(); after < before+32 { // some of the 64 MiB may reuse pages already resident
		t.Fatalf("peak RSS %.1f MiB after touching 64 MiB, %.1f before", after, before)
	}
	_ = b[len(b)-1]
}
