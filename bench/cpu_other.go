//go:build !linux

package bench

// processCPU is not read outside Linux: the etcd member's share is then
// left out (CPU.Etcd null).
func processCPU(int) (float64, bool) { return 0, false }

// stealTime is not read outside Linux (CPU.Steal null).
func stealTime() (float64, bool) { return 0, false }
