package cli

import "syscall"

// PeakRSSMiB is the highest resident set size this process has had, in
// MiB (getrusage's ru_maxrss), for the -o json reports of long work: an
// operator sizing a node for the upgrade reads it there.
func PeakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}
