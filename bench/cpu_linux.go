package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the unit of /proc/<pid>/stat's times: USER_HZ, 100 on every
// architecture Go builds for on Linux.
const userHZ = 100

// processCPU is the processor time (user and system, seconds) that process
// pid has used so far, from /proc/<pid>/stat; false if it cannot be read.
func processCPU(pid int) (float64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields counted are those after its closing one, from field 3 on.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return float64(utime+stime) / userHZ, true
}

// stealTime is the time, in seconds, that the hypervisor has taken from
// this machine's virtual cores so far: the steal column of /proc/stat's
// cpu line (its 8th value); false where there is none.
func stealTime() (float64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	steal, err := strconv.ParseUint(f[8], 10, 64)
	if err != nil {
		return 0, false
	}
	return float64(steal) / userHZ, true
}
