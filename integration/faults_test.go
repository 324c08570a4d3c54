package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/upgrade"
	"github.com/rokup/rokup/verify"
)

// The fault matrix (issue 8): one scenario is a run of the real binaries
// with one fault injected at one step, then every invariant of verify.
// TestFaults runs a fixed short subset in `make test`; TestSoak (make soak)
// runs the whole matrix with random sizes, timings and victims.

// Faults.
const (
	fKill          = "kill"             // SIGKILL the step's runner as the step starts; restart it
	fKillProgress  = "kill-progress"    // SIGKILL it once the step reported some progress
	fKillTime      = "kill-at-time"     // SIGKILL a random sidecar a random time after the start (step "any")
	fPause         = "pause"            // SIGSTOP it longer than its session TTL, then SIGCONT
	fPauseTillDone = "pause-until-done" // SIGSTOP the master; SIGCONT only after the others finished
	fMember        = "member"           // stop the etcd member the runner prefers; restart it
	fRaftLeader    = "raft-leader"      // stop the raft leader member; restart it
	fPartition     = "partition"        // blackhole the runner's traffic longer than its TTL
	fCutTillDone   = "cut-until-done"   // blackhole the master's traffic (its writes held in flight) until the others finished
	fLagTillDone   = "lag-until-done"   // delay the master's traffic by 4 TTLs: its writes reach etcd after the others finished
	fDelay         = "delay"            // delay every chunk of the runner's traffic
	fV2Write       = "v2-write"         // a Gateway writes v2 documents during the move
	fGC            = "gc"               // an operator runs rok-gc during the run: refused, exit 3
)

// Steps of each mode, in plan order.
var (
	nodelocalSteps = []string{upgrade.StepFence, upgrade.StepMigrate, upgrade.StepNodelocal, upgrade.StepCA, upgrade.StepCleanup, upgrade.StepUnfence}
	localSteps     = []string{upgrade.StepFence, upgrade.StepMigrate, upgrade.StepAll, upgrade.StepCleanup, upgrade.StepUnfence}
)

type scenario struct {
	Cluster, Mode, Step, Fault string
}

func (s scenario) String() string {
	return fmt.Sprintf("%s/%s/%s/%s", s.Cluster, s.Mode, s.Step, s.Fault)
}

// outcome is one scenario run's verdict.
type outcome struct {
	broken []string // invariants broken, or what went wrong
	note   string   // how the fault landed
}

// runScenario runs s once with the randomness of seed and returns what broke.
func runScenario(t *testing.T, s scenario, seed int64, size int) outcome {
	rng := rand.New(rand.NewSource(seed))
	var out outcome
	seeded, nodes := 3, []string(nil)
	if s.Mode == upgrade.ModeLocal {
		seeded, nodes = 1, []string{"node-1"}
	}
	e := harness.New(t, harness.Options{Cluster: s.Cluster, Docs: size / 2, Objects: size, Seeded: seeded, Seed: seed})
	e.StartSidecars()

	const id = "upgrade-0.14"

	// Wait for the step, then find its runner.
	min := int64(0)
	if s.Fault == fKillProgress || s.Fault == fCutTillDone || s.Fault == fLagTillDone {
		min = 1 + rng.Int63n(stepWrites(e, s.Step)/2+1)
	}
	var victim int
	var landed string
	var err error
	if s.Fault == fKillTime {
		e.Start(id, s.Mode, nodes...)
		d := time.Duration(rng.Intn(3000)) * time.Millisecond
		time.Sleep(d)
		victim, landed = rng.Intn(len(e.Sidecars)), fmt.Sprintf("%s after the start", d)
	} else {
		victim, landed, err = waitStep(e, id, s, min, rng, func() { e.Start(id, s.Mode, nodes...) })
		if err != nil {
			return outcome{broken: []string{"scenario: " + err.Error()}}
		}
	}
	out.note = landed
	ttl := time.Duration(e.Opts.SessionTTL) * time.Second
	var gcOut string
	var gcCode int
	var gcInstance string
	switch s.Fault {
	case fKill, fKillProgress, fKillTime:
		if err := e.Sidecars[victim].Kill(); err != nil {
			out.broken = append(out.broken, "kill: "+err.Error())
		}
		time.Sleep(time.Duration(rng.Int63n(int64(2 * ttl))))
		if err := e.Sidecars[victim].Start(); err != nil {
			out.broken = append(out.broken, "restart: "+err.Error())
		}
	case fPause:
		_ = e.Pause(victim, ttl+time.Duration(500+rng.Intn(1500))*time.Millisecond)
	case fMember, fRaftLeader:
		m := victim // the member this sidecar lists first
		if s.Fault == fRaftLeader {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			m = e.RaftLeader(ctx)
			cancel()
			if m < 0 {
				m = victim
			}
		}
		if err := e.Cluster.Stop(m); err != nil {
			out.broken = append(out.broken, "stop member: "+err.Error())
		}
		time.Sleep(time.Duration(500+rng.Intn(2500)) * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := e.Cluster.Restart(ctx, m); err != nil {
			out.broken = append(out.broken, "restart member: "+err.Error())
		}
		cancel()
	case fPartition:
		e.Partition(victim, harness.Blackhole, 0, ttl+time.Duration(500+rng.Intn(2000))*time.Millisecond)
	case fDelay:
		e.Partition(victim, harness.Pass, time.Duration(5+rng.Intn(40))*time.Millisecond, time.Duration(1+rng.Intn(3))*time.Second)
	case fV2Write:
		if err := writeV2(e, rng); err != nil {
			out.broken = append(out.broken, "v2 write: "+err.Error())
		}
	case fGC:
		node := e.Nodes[victim]
		if s.Mode == upgrade.ModeLocal {
			node = e.Nodes[0] // the one node with storage
		}
		gcInstance = node
		args := []string{"--node", node, "--nodelocal-root", e.Layout.Nodelocal(node)}
		if rng.Intn(2) == 0 {
			gcInstance = "_ca" // the cluster's one CA sweep
			args = []string{"--ca", "--node", node, "--local-root", e.Layout.Local()}
		}
		gcOut, gcCode = e.Exec("rok-gc", args...)
	}

	var paused, cut = -1, -1
	var victimLease int64 // the session the deposed master loses
	if s.Fault == fCutTillDone || s.Fault == fLagTillDone || s.Fault == fPauseTillDone {
		if err := e.Until(30*time.Second, func(ctx context.Context) (bool, error) {
			l, err := e.MemberLease(ctx, e.Nodes[victim])
			victimLease = l
			return l != 0, err
		}); err != nil {
			out.broken = append(out.broken, "the master's member key: "+err.Error())
		}
	}
	switch s.Fault {
	case fCutTillDone:
		for _, p := range e.Proxies[victim] {
			p.Set(harness.Blackhole, 0)
		}
		cut = victim
	case fLagTillDone:
		for _, p := range e.Proxies[victim] {
			p.Set(harness.Pass, 4*ttl)
		}
		cut = victim
	}
	if s.Fault == fPauseTillDone {
		if err := e.Sidecars[victim].Signal(syscall.SIGSTOP); err != nil {
			out.broken = append(out.broken, "pause: "+err.Error())
		}
		paused = victim
	}
	run, err := e.WaitRun(id, 150*time.Second)
	if err == nil && run.State == upgrade.StateFailed && s.Fault == fV2Write {
		// The move's verification saw the Gateway's write and the run
		// failed cleanly; the operator stops the Gateway and re-runs.
		out.note += "; the move failed (" + firstLine(run.Error) + "), re-run"
		e.Start(id, s.Mode, nodes...)
		if err := e.Until(30*time.Second, func(ctx context.Context) (bool, error) {
			r, err := e.View(ctx, id)
			return err == nil && r.State != upgrade.StateFailed, err
		}); err != nil {
			out.broken = append(out.broken, "re-run not taken: "+err.Error())
		}
		run, err = e.WaitRun(id, 150*time.Second)
	}
	if err != nil {
		out.broken = append(out.broken, "run: "+err.Error())
		t.Logf("%s\n%s", err, e.Logs())
		return out
	}
	if deposed := max(paused, cut); deposed >= 0 {
		if paused >= 0 {
			// The deposed master wakes after the run ended, still "in" its
			// step: any write of its lands after the run's end and is caught.
			_ = e.Sidecars[paused].Signal(syscall.SIGCONT)
		}
		if cut >= 0 {
			// The partition heals: the writes the deposed master had in
			// flight (held, or delayed by 4 TTLs) reach etcd now, after the
			// run ended, and must all fail.
			for _, p := range e.Proxies[cut] {
				p.Set(harness.Pass, 0)
			}
			if err := e.WaitDrained(cut, 60*time.Second); err != nil {
				out.broken = append(out.broken, "the deposed master's held traffic never reached etcd: "+err.Error())
			}
		}
		// It is back once it found its session gone and registered anew:
		// by then it has acted on everything it did before the fault.
		if err := e.Until(60*time.Second, func(ctx context.Context) (bool, error) {
			l, err := e.MemberLease(ctx, e.Nodes[deposed])
			return l != 0 && l != victimLease, err
		}); err != nil {
			out.broken = append(out.broken, "the deposed master never registered a new session after it came back: "+err.Error())
		}
	}
	// Judge only once no sidecar can write any more: every one stopped,
	// no connection left open through a proxy. A late write, however late,
	// is in the history then.
	if err := e.StopAll(); err != nil {
		out.broken = append(out.broken, "stopping the sidecars: "+err.Error())
	}
	if run.State != upgrade.StateDone {
		out.broken = append(out.broken, fmt.Sprintf("run ended %s: %s", run.State, run.Error))
	}
	// rok-gc must be refused while the fence is held. The fence steps are
	// quick: by the time rok-gc starts, the run may have lifted the fence;
	// then the GC runs, and it must have registered after the lift (read
	// from the history) and be judged by its deletions.
	gcRan := s.Fault == fGC && gcCode == 0
	if s.Fault == fGC && gcCode != 3 && !gcRan {
		out.broken = append(out.broken, fmt.Sprintf("rok-gc during the run exited %d, want 3 (fenced): %s", gcCode, firstLine(gcOut)))
	}
	if gcRan {
		lifted, registered, err := gcAfterLift(e, gcInstance)
		switch {
		case err != nil:
			out.broken = append(out.broken, "rok-gc ran: "+err.Error())
		case registered < lifted:
			out.broken = append(out.broken, fmt.Sprintf("rok-gc registered at revision %d, inside the fence lifted at %d, and ran (exit 0): %s", registered, lifted, strings.ReplaceAll(gcOut, "\n", " | ")))
		default:
			out.note += fmt.Sprintf("; rok-gc ran after the lift (fence lifted at %d, GC registered at %d)", lifted, registered)
		}
	}
	for _, c := range e.Check(harness.Invariants{Run: run, Mode: s.Mode, GC: gcRan}) {
		if !c.OK {
			out.broken = append(out.broken, c.Name+": "+c.Detail)
		}
	}
	t.Logf("%s seed %d: the fault landed %s", s, seed, out.note)
	if len(out.broken) > 0 || os.Getenv("ROKUP_LOGS") == "1" {
		t.Logf("%s seed %d: %v\n%s", s, seed, out.broken, e.Logs())
	}
	return out
}

// stepWrites is how many keys step writes at least, from the manifest, so
// a fault "after the n-th write" lands inside the step. Nodelocal counts
// the smallest node, whichever the victim is.
func stepWrites(e *harness.Env, step string) int64 {
	m := e.Manifest
	switch step {
	case upgrade.StepMigrate:
		return int64(m.Docs)
	case upgrade.StepNodelocal:
		least := -1
		for _, n := range m.Nodes {
			if c := m.Count(libmap.MapsUUID, n) + m.Count(libmap.ChocksIdx, n); least < 0 || c < least {
				least = c
			}
		}
		return int64(max(least, 0))
	case upgrade.StepCA:
		return int64(m.Count(libmap.MapsCA, "") + m.Count(libmap.ChocksCA, ""))
	case upgrade.StepAll:
		return int64(m.Total)
	}
	return 0
}

// waitStep lands the fault: it waits, on a watch of every change, for the
// moment step s.Step starts (the run or node record says it is running),
// or for kill-progress until the step's n-th write (progress read from
// etcd itself), or for the fence steps until the fence key is written or
// deleted. It returns the index of the sidecar running the step then.
func waitStep(e *harness.Env, id string, s scenario, min int64, rng *rand.Rand, started func()) (int, string, error) {
	keys := upgrade.DefaultKeys
	node := ""
	switch s.Step {
	case upgrade.StepNodelocal:
		node = e.Nodes[rng.Intn(len(e.Nodes))]
	case upgrade.StepAll:
		node = e.Nodes[0] // the local-mode run's one node
	}
	prefixes := map[string][]string{
		upgrade.StepMigrate:   {e.Manifest.GWPrefix + "/"},
		upgrade.StepNodelocal: {"/epochs/maps-uuid/" + node + "/", "/epochs/chocks-idx/" + node + "/"},
		upgrade.StepCA:        {"/epochs/maps-ca/", "/epochs/chocks-ca/"},
		upgrade.StepAll:       {"/epochs/"},
	}[s.Step]
	byKey := rng.Intn(2) == 0 // for the fence steps: the fence key itself, or the step's start
	var writes int64
	var how string
	fired, cancel := e.Trigger(func(key string, v []byte, deleted bool) bool {
		switch {
		case (s.Fault == fKillProgress || s.Fault == fCutTillDone || s.Fault == fLagTillDone) && len(prefixes) > 0:
			for _, p := range prefixes {
				if !deleted && strings.HasPrefix(key, p) {
					writes++
				}
			}
			how = fmt.Sprintf("after write %d of %s", writes, s.Step)
			return writes >= min
		case byKey && s.Step == upgrade.StepFence && key == "/rok/fence/gc" && !deleted:
			how = "as the fence was written"
			return true
		case byKey && s.Step == upgrade.StepUnfence && key == "/rok/fence/gc" && deleted:
			how = "as the fence was lifted"
			return true
		case key == keys.Run(id):
			var r upgrade.Run
			if json.Unmarshal(v, &r) != nil {
				return false
			}
			for _, st := range r.Steps {
				if st.Name == s.Step && st.State == upgrade.StateRunning && (node == "" || st.Node == node) {
					how = "as " + s.Step + " started"
					return true
				}
			}
		case node != "" && key == keys.NodeState(id, node):
			var ns upgrade.NodeSteps
			if json.Unmarshal(v, &ns) != nil {
				return false
			}
			for _, st := range ns.Steps {
				if st.Name == s.Step && st.State == upgrade.StateRunning {
					how = "as " + s.Step + " started on " + node
					return true
				}
			}
		}
		return false
	})
	defer cancel()
	started()
	select {
	case <-fired:
	case <-time.After(120 * time.Second):
		return -1, "", fmt.Errorf("step %s never reached (%s)", s.Step, how)
	}
	victim := -1
	tillDone := s.Fault == fPauseTillDone || s.Fault == fCutTillDone || s.Fault == fLagTillDone
	if node != "" && !tillDone {
		victim = e.Index(node)
	}
	if s.Step == upgrade.StepAll && !tillDone {
		victim = 0 // the local node
	}
	if victim < 0 {
		err := e.Until(30*time.Second, func(ctx context.Context) (bool, error) {
			l, err := e.Leader(ctx)
			victim = l
			return l >= 0, err
		})
		if err != nil {
			return -1, "", fmt.Errorf("no master: %v", err)
		}
	}
	return victim, how + ", victim " + e.Nodes[victim], nil
}

// writeV2 is a Gateway still running during the move: it rewrites a few
// documents and adds one, in v2, while the master copies them.
func writeV2(e *harness.Env, rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		key := fmt.Sprintf("%s/late/doc-%d", e.Manifest.GWPrefix, rng.Intn(1000))
		if _, err := e.V2.Set(ctx, key, fmt.Sprintf(`{"late":%d}`, i), &clientv2.SetOptions{}); err != nil {
			return err
		}
		time.Sleep(time.Duration(rng.Intn(50)) * time.Millisecond)
	}
	return nil
}

// gcAfterLift returns the revision at which the run's fence was lifted and
// the one at which a GC instance first registered.
func gcAfterLift(e *harness.Env, instance string) (lifted, registered int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := verify.ReadHistory(ctx, e.Cli, 1)
	if err != nil {
		return 0, 0, err
	}
	for _, ev := range h.Events {
		switch {
		case ev.Key == "/rok/fence/gc" && ev.Delete && lifted == 0:
			lifted = ev.Rev
		case ev.Key == "/rok/gc/instances/"+instance && !ev.Delete && registered == 0:
			registered = ev.Rev
		}
	}
	if registered == 0 {
		return lifted, 0, fmt.Errorf("exit 0 but no GC instance %s registered", instance)
	}
	return lifted, registered, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// TestFaults is the short subset `make test` runs: a fault of each kind at
// a step where it hurts, in both modes, on the embedded cluster, and the
// plain crash cases on Debian's etcd 3.4 when it is installed.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the fault matrix in -short mode")
	}
	E, X := harness.Embedded, harness.Etcd34
	for _, s := range []scenario{
		{E, upgrade.ModeNodelocal, upgrade.StepMigrate, fKillProgress},
		{E, upgrade.ModeNodelocal, upgrade.StepCA, fPauseTillDone},
		{E, upgrade.ModeNodelocal, upgrade.StepCA, fLagTillDone},
		{E, upgrade.ModeNodelocal, upgrade.StepNodelocal, fMember},
		{E, upgrade.ModeNodelocal, upgrade.StepFence, fGC},
		{E, upgrade.ModeLocal, upgrade.StepAll, fPartition},
		{E, upgrade.ModeLocal, upgrade.StepMigrate, fV2Write},
		{X, upgrade.ModeNodelocal, upgrade.StepCA, fKill},
	} {
		t.Run(s.String(), func(t *testing.T) {
			t.Parallel()
			if out := runScenario(t, s, 1, 600); len(out.broken) > 0 {
				t.Errorf("%s (%s): %s", s, out.note, strings.Join(out.broken, "\n\t"))
			} else {
				t.Logf("%s", out.note)
			}
		})
	}
}
