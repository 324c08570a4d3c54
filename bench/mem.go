package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

// memSampleEvery is how often a watch samples RSS and the Go heap between
// the kernel's high-water mark readings.
const memSampleEvery = 20 * time.Millisecond

// Memory is what one stretch of the run used, in MiB. The process holds
// the embedded etcd too, so both figures include etcd's share.
type Memory struct {
	PeakRSS   float64 // highest resident set size during the stretch
	RSSGrowth float64 // PeakRSS minus the RSS when it began
	HeapPeak  float64 // highest Go heap in use (HeapInuse), sampled
	// HWMReset says the kernel's high-water mark was reset at the start
	// (/proc/self/clear_refs), so PeakRSS is exact rather than sampled.
	HWMReset bool
}

// watch samples memory from start until Stop. Starting collects garbage
// and returns freed memory to the OS, so a stretch does not pay for the
// one before.
type watch struct {
	base     uint64
	hwmReset bool
	stop     chan struct{}
	done     chan struct{}

	mu       sync.Mutex
	peakRSS  uint64
	peakHeap uint64
}

func watchMemory() *watch {
	runtime.GC()
	debug.FreeOSMemory()
	w := &watch{stop: make(chan struct{}), done: make(chan struct{})}
	// Writing 5 resets VmHWM to the current RSS (Linux ≥ 4.0).
	w.hwmReset = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	st := readStatus()
	w.base = st.rss
	w.peakRSS = st.rss
	w.sample()
	go func() {
		defer close(w.done)
		t := time.NewTicker(memSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.sample()
			}
		}
	}()
	return w
}

var heapSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
}

func (w *watch) sample() {
	st := readStatus()
	s := make([]metrics.Sample, len(heapSamples))
	copy(s, heapSamples)
	metrics.Read(s)
	var heap uint64
	for _, x := range s {
		if x.Value.Kind() == metrics.KindUint64 {
			heap += x.Value.Uint64()
		}
	}
	w.mu.Lock()
	w.peakRSS = max(w.peakRSS, st.rss)
	w.peakHeap = max(w.peakHeap, heap)
	w.mu.Unlock()
}

// Stop ends the watch and returns what it saw.
func (w *watch) Stop() Memory {
	close(w.stop)
	<-w.done
	w.sample()
	st := readStatus()
	w.mu.Lock()
	defer w.mu.Unlock()
	peak := w.peakRSS
	if w.hwmReset && st.hwm > peak {
		peak = st.hwm
	}
	growth := uint64(0)
	if peak > w.base {
		growth = peak - w.base
	}
	return Memory{PeakRSS: mib(peak), RSSGrowth: mib(growth), HeapPeak: mib(w.peakHeap), HWMReset: w.hwmReset}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

type status struct{ rss, hwm uint64 }

// readStatus reads VmRSS and VmHWM from /proc/self/status; elsewhere it
// falls back to the memory the Go runtime holds.
func readStatus() status {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return status{rss: ms.Sys, hwm: ms.Sys}
	}
	var st status
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			st.rss = kb(line[len("VmRSS:"):])
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			st.hwm = kb(line[len("VmHWM:"):])
		}
	}
	return st
}

func kb(field []byte) uint64 {
	f := bytes.Fields(field)
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(string(f[0]), 10, 64)
	return n << 10
}
