package integration

import (
	"context"
	"math/rand"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/upgrade"
)

// After the upgrade, rok-gc sweeps a node's storage, then a composer keeps
// touching garbage chocks (it wants to reuse them) while rok-gc sweeps the
// shared storage: a
// touch that answered "exists" after the GC began must keep its chock, and
// every deletion must follow the rules (verify.Deletions).
func TestTouchWhileGCSweeps(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the fault matrix in -short mode")
	}
	t.Parallel()
	if broken := runTouchGC(t, 5, 1200); len(broken) > 0 {
		t.Error(broken)
	}
}

func runTouchGC(t *testing.T, seedN int64, size int) []string {
	rng := rand.New(rand.NewSource(seedN))
	e := harness.New(t, harness.Options{Docs: size / 4, Objects: size, Seed: seedN})
	e.StartSidecars()
	e.Start("u", upgrade.ModeNodelocal)
	run, err := e.WaitRun("u", 120*time.Second)
	if err != nil || run.State != upgrade.StateDone {
		return []string{"the upgrade did not finish: " + errString(err, run)}
	}
	ctx := context.Background()
	head, err := e.Cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	// A node's own sweep first: every GC advances the epoch, and "after the
	// GC began" below is after the CA sweep's own advance.
	out2, code2 := e.Exec("rok-gc", "--node", "node-2", "--nodelocal-root", e.Layout.Nodelocal("node-2"))
	cache := libmap.New(e.Cli)
	before, err := cache.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var garbage []seed.Object
	for o := range e.Manifest.Objects() {
		if !o.Reachable && o.Scope == libmap.ChocksCA {
			garbage = append(garbage, o)
		}
	}
	rng.Shuffle(len(garbage), func(i, j int) { garbage[i], garbage[j] = garbage[j], garbage[i] })

	// The composer: touch garbage chocks until the GC is over. A touch
	// begun after the epoch moved past `before` stamps ≥ the GC's epoch.
	stop := make(chan struct{})
	var mu sync.Mutex
	mustKeep := map[string]bool{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			o := garbage[i%len(garbage)]
			cur, err := cache.Current(ctx)
			if err != nil {
				continue
			}
			ok, err := cache.Touch(ctx, o.Scope, o.Node, o.Name)
			if err == nil && ok && cur > before {
				mu.Lock()
				mustKeep[o.Path] = true
				mu.Unlock()
			}
		}
	}()
	time.Sleep(time.Duration(rng.Intn(100)) * time.Millisecond)
	out1, code1 := e.Exec("rok-gc", "--ca", "--node", "node-1", "--local-root", e.Layout.Local())
	close(stop)
	wg.Wait()

	var broken []string
	if code1 != 0 || code2 != 0 {
		broken = append(broken, "rok-gc failed: "+out1+out2)
	}
	for _, c := range e.Check(harness.Invariants{Run: run, Mode: upgrade.ModeNodelocal, GC: true, Before: head.Header.Revision}) {
		if !c.OK {
			broken = append(broken, c.Name+": "+c.Detail)
		}
	}
	gone := 0
	for o := range e.Manifest.Objects() {
		if _, err := os.Lstat(o.Path); err != nil {
			gone++
			if mustKeep[o.Path] {
				broken = append(broken, o.Path+": touched (\"exists\") after the GC began, then collected")
			}
		}
	}
	if gone == 0 {
		broken = append(broken, "the GC collected nothing: the scenario proves nothing")
	}
	t.Logf("GC collected %d objects; %d chocks touched after it began were kept", gone, len(mustKeep))
	return broken
}

func errString(err error, run *upgrade.Run) string {
	if err != nil {
		return err.Error()
	}
	return run.State + ": " + run.Error
}
