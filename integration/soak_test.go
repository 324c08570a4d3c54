package integration

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/upgrade"
)

// TestSoak is the whole fault matrix, randomized: `make soak SOAK_SEED=…
// SOAK_RUNS=…` (ROKUP_SOAK=1). Run i plays scenario i mod the matrix with
// seed SOAK_SEED+i (sizes, timings, victims), so a failure is reproduced by
// its seed: SOAK_SEED=<seed> SOAK_RUNS=1 SOAK_ONLY=<scenario>.
func TestSoak(t *testing.T) {
	if os.Getenv("ROKUP_SOAK") != "1" {
		t.Skip("the randomized fault matrix runs with ROKUP_SOAK=1 (make soak)")
	}
	base := envInt(t, "SOAK_SEED", 1)
	runs := int(envInt(t, "SOAK_RUNS", 20))
	matrix := soakMatrix()
	if only := os.Getenv("SOAK_ONLY"); only != "" {
		var keep []scenario
		for _, s := range matrix {
			if strings.HasPrefix(s.String(), only) {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			t.Fatalf("SOAK_ONLY=%s names no scenario", only)
		}
		matrix = keep
	}
	fmt.Printf("soak: %d scenarios in the matrix\n", len(matrix))
	type row struct {
		runs, passed int
		broken       []string
	}
	var mu sync.Mutex
	done := 0
	table := map[string]*row{}
	t.Run("matrix", func(t *testing.T) {
		for i := 0; i < runs; i++ {
			s, seed := matrix[i%len(matrix)], base+int64(i)
			t.Run(fmt.Sprintf("%s/seed-%d", s, seed), func(t *testing.T) {
				t.Parallel()
				size := 300 + int(seed%7)*150
				broken := []string{"the scenario stopped early (t.Fatal): see its log"}
				defer func() { // a row even when the scenario stops with t.Fatal
					if t.Skipped() {
						return // no etcd 3.4 here
					}
					mu.Lock()
					r := table[s.String()]
					if r == nil {
						r = &row{}
						table[s.String()] = r
					}
					r.runs++
					verdict := "ok"
					if len(broken) == 0 {
						r.passed++
					} else {
						r.broken = append(r.broken, fmt.Sprintf("seed %d: %s", seed, broken[0]))
						verdict = "BROKEN " + broken[0]
					}
					done++
					// One line per run as it ends, for a long soak's log.
					fmt.Printf("soak: %d/%d %s seed %d: %s\n", done, runs, s, seed, verdict)
					mu.Unlock()
				}()
				switch s.Fault {
				case "touch-gc":
					broken = runTouchGC(t, seed, size)
				case "kill-gc":
					// 2 000 – 8 000 garbage chocks, killed after 1 – 1 000 deletions.
					broken = runKillGC(t, seed, 2000+int(seed%4)*2000, 1+int(seed*7919%1000))
				default:
					broken = runScenario(t, s, seed, size).broken
				}
				if len(broken) > 0 {
					t.Errorf("%s seed %d: %s", s, seed, strings.Join(broken, "\n\t"))
				}
			})
		}
	})
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "\nsoak: SOAK_SEED=%d SOAK_RUNS=%d\n%-55s %5s %6s  %s\n", base, runs, "scenario", "runs", "passed", "invariant broken (seed to reproduce)")
	total, passed := 0, 0
	for _, n := range names {
		r := table[n]
		total += r.runs
		passed += r.passed
		broken := "-"
		if len(r.broken) > 0 {
			broken = strings.Join(r.broken, "; ")
		}
		fmt.Fprintf(&b, "%-55s %5d %6d  %s\n", n, r.runs, r.passed, broken)
	}
	fmt.Fprintf(&b, "%-55s %5d %6d\n", "total", total, passed)
	fmt.Print(b.String())
}

// soakMatrix is every fault at every step where it means something, in
// both modes, on the embedded cluster; crashes and member loss also on
// etcd 3.4.
func soakMatrix() []scenario {
	var m []scenario
	add := func(cluster, mode string, steps []string) {
		for _, step := range steps {
			long := step == upgrade.StepMigrate || step == upgrade.StepNodelocal || step == upgrade.StepCA || step == upgrade.StepAll
			faults := []string{fKill, fPause, fMember, fRaftLeader, fPartition, fDelay, fGC}
			if long {
				faults = append(faults, fKillProgress)
			}
			if step == upgrade.StepMigrate {
				faults = append(faults, fV2Write)
			}
			// The master can stay paused to the end only once no node step
			// needs it.
			if mode == upgrade.ModeNodelocal && (step == upgrade.StepCA || step == upgrade.StepCleanup || step == upgrade.StepUnfence) {
				faults = append(faults, fPauseTillDone, fCutTillDone, fLagTillDone)
			}
			if cluster == harness.Etcd34 {
				faults = []string{fKill, fMember, fPause}
			}
			for _, f := range faults {
				m = append(m, scenario{cluster, mode, step, f})
			}
		}
	}
	add(harness.Embedded, upgrade.ModeNodelocal, nodelocalSteps)
	add(harness.Embedded, upgrade.ModeLocal, localSteps)
	add(harness.Etcd34, upgrade.ModeNodelocal, nodelocalSteps)
	m = append(m, scenario{harness.Embedded, upgrade.ModeNodelocal, "after-run", "touch-gc"},
		scenario{harness.Embedded, upgrade.ModeNodelocal, "after-run", "kill-gc"},
		scenario{harness.Embedded, upgrade.ModeNodelocal, "any", fKillTime},
		scenario{harness.Embedded, upgrade.ModeLocal, "any", fKillTime},
		scenario{harness.Etcd34, upgrade.ModeNodelocal, "any", fKillTime})
	return m
}

func envInt(t *testing.T, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q is not a number", name, v)
	}
	return n
}
