package bench

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
)

// CPU is the processor time a path took, in seconds: rokup's own (this
// process: the tool's code, and the kernel's work on its behalf, such as a
// sweep's renames and unlinks) and the etcd member's when the member is
// the bench's child process (null otherwise: an external cluster's is not
// ours to read, and an in-process member's is inside rokup's). Busy is
// their sum over what the machine's cores could give in the path's wall
// time: near 1, the path is bound by the processor rather than by waits
// (fsyncs, round trips, the disk), and no change that leaves its work the
// same can make it much faster here. For a sampled path, the sample's.
type CPU struct {
	User float64  `json:"user_s"`
	Sys  float64  `json:"sys_s"`
	Etcd *float64 `json:"etcd_s"`
	Busy float64  `json:"busy"`
	// Steal is the time the machine's virtual cores wanted to run and
	// the hypervisor ran something else (every core's, /proc/stat; null
	// where it is not reported). On a shared VM a path with steal ran on
	// a slower machine than one without: its rates compare unevenly.
	Steal *float64 `json:"steal_s,omitempty"`
}

// Total is rokup's and etcd's processor time together.
func (c *CPU) Total() float64 {
	t := c.User + c.Sys
	if c.Etcd != nil {
		t += *c.Etcd
	}
	return t
}

// parts names rokup's share of c, user and system, and the etcd member's
// where it was measured, for the notes.
func (c *CPU) parts() string {
	s := fmt.Sprintf("rokup %.1f user + %.1f system", c.User, c.Sys)
	if c.Etcd != nil {
		s += fmt.Sprintf(", etcd %.1f", *c.Etcd)
	}
	return s
}

// cpuMark is the processor time used so far: rokup's, and the member
// child's where etcdOK.
type cpuMark struct {
	user, sys, etcd, steal float64
	etcdOK, stealOK        bool
}

// cpuMark reads the clocks a path's CPU is measured between.
func (r *runner) cpuMark() cpuMark {
	var m cpuMark
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.user = time.Duration(ru.Utime.Nano()).Seconds()
		m.sys = time.Duration(ru.Stime.Nano()).Seconds()
	}
	if pid, ok := r.memberPID(); ok {
		m.etcd, m.etcdOK = processCPU(pid)
	}
	m.steal, m.stealOK = stealTime()
	return m
}

// memberPID is the etcd member's process, when it is the bench's child.
func (r *runner) memberPID() (int, bool) {
	if r.env == nil || r.env.member == nil || r.env.member.child == nil || r.env.member.child.Process == nil {
		return 0, false
	}
	return r.env.member.child.Process.Pid, true
}

// cpuSince is the CPU from m until now, over wall on every core.
func (r *runner) cpuSince(m cpuMark, wall time.Duration) *CPU {
	now := r.cpuMark()
	c := &CPU{User: round2(now.user - m.user), Sys: round2(now.sys - m.sys)}
	if m.etcdOK && now.etcdOK {
		e := round2(now.etcd - m.etcd)
		c.Etcd = &e
	}
	if m.stealOK && now.stealOK {
		st := round2(now.steal - m.steal)
		c.Steal = &st
	}
	if wall > 0 {
		c.Busy = round2(c.Total() / (wall.Seconds() * float64(r.cores())))
	}
	return c
}

// cores is what the run's CPU is measured against: the machine's, as the
// result reports them.
func (r *runner) cores() int {
	if r.res != nil && r.res.Cores > 0 {
		return r.res.Cores
	}
	return runtime.NumCPU()
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }
