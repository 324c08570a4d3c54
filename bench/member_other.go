//go:build !linux

package bench

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }

// processCPU is not read outside Linux.
func processCPU(int) (float64, bool) { return 0, false }
