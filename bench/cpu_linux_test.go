package bench

import (
	"bufio"
	"crypto/sha256"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The member's processor time is read from the kernel's count for its
// process: a child that computes, then waits, has used what it computed.
func TestCPUCountsTheChildMembersTime(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", `i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo done; read x`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("no /bin/sh to stand in for the member: %v", err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	r := &runner{env: &env{member: &member{child: cmd}}, res: &Result{Cores: 2}}
	m := r.cpuMark()
	if !m.etcdOK {
		t.Fatal("the child's processor time could not be read")
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "done" {
		t.Fatalf("child said %q, %v", line, err)
	}
	full, ok := processCPU(cmd.Process.Pid)
	c := r.cpuSince(m, time.Second)
	// The loop takes a shell tens of milliseconds at least; /proc counts
	// in hundredths of a second.
	if !ok || full <= 0 || c.Etcd == nil || *c.Etcd <= 0 {
		t.Errorf("after its loop the child has used %g s (read %v), cpu %+v: want etcd's share counted", full, ok, c)
	}
}

// Our own count in /proc agrees with getrusage, which measures rokup's
// share: the two are the same clock read two ways, so /proc's fields are
// the ones meant.
func TestProcessCPUAgreesWithRusage(t *testing.T) {
	buf := make([]byte, 64<<20)
	for range 4 {
		sha256.Sum256(buf)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	proc, ok := processCPU(os.Getpid())
	rus := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	// /proc is read after getrusage and counts in ticks of 1/100 s.
	if !ok || proc < rus-0.02 || proc > rus+0.5 {
		t.Errorf("/proc says %.2f s, getrusage %.2f s", proc, rus)
	}
	if _, ok := processCPU(-1); ok {
		t.Error("a process that does not exist has a processor time")
	}
}
