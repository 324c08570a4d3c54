package bench

import "syscall"

// childAttr kills the member process if the bench dies without cleaning up.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
