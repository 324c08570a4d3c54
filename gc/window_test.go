package gc_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/libmap"
)

// TestEveryInterleavingOfASweepAndAComposerKeepsTheComposersWrite drives
// one GC run's collection of one garbage chock and one composer storing
// the same chock (composer.Put: touch; on "missing" write, rename into
// place, stamp) through a deterministic scheduler, over every order of
// their steps, and every order with one process killed at any point (a
// killed GC's lease then expires, and a recovery runs, itself at any point
// of what the composer has left). After each, once every process finished
// or was recovered, and again after a killed process wakes up as if it had
// only been paused:
//
//   - a composer told "exists" finds the file it relies on, unchanged;
//   - a composer that renamed its file into place finds its own bytes;
//   - every object with an epoch key has its file;
//   - nothing is left set aside.
//
// The property fails for a GC that removes the object's path after its
// transaction (the window this protocol closes): the composer told
// "missing" right after the commit writes a file which the unlink removes.
func TestEveryInterleavingOfASweepAndAComposerKeepsTheComposersWrite(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	cache := libmap.New(cli)
	base := t.TempDir()

	var runs, touchWon, sweepWon, crashes int
	queue := [][]string{{}}
	for len(queue) > 0 {
		prefix := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		runs++
		c := newWindowCase(t, cli, cache, filepath.Join(base, fmt.Sprint(runs)), fmt.Sprintf("w%d", runs))
		trace := c.run(prefix)
		if msg := c.failure; msg != "" {
			t.Fatalf("schedule %s: %s", strings.Join(trace.taken(), " "), msg)
		}
		for i := len(prefix); i < len(trace); i++ {
			for _, alt := range trace[i].options {
				if alt != trace[i].taken {
					queue = append(queue, append(append([]string{}, trace.taken()[:i]...), alt))
				}
			}
		}
		t.Logf("%v: told exists %v, wrote %v, killed %q", trace.taken(), c.exists, c.renamed, c.crashed)
		switch {
		case c.crashed != "":
			crashes++
		case c.exists:
			touchWon++
		case c.renamed:
			sweepWon++
		}
	}
	t.Logf("%d schedules: the touch won %d, the sweep won then the composer wrote %d, with a kill %d", runs, touchWon, sweepWon, crashes)
	if touchWon == 0 || sweepWon == 0 || crashes == 0 {
		t.Fatalf("the enumeration missed an order: touch won %d, sweep won %d, kills %d", touchWon, sweepWon, crashes)
	}
}

// windowCase is one schedule: its own node, storage root and keys.
type windowCase struct {
	t      *testing.T
	cli    *clientv3.Client
	cache  *libmap.Cache
	node   string
	layout composer.Layout
	path   string

	actors map[string]*actor
	// What the composer was told and did.
	exists, renamed bool
	crashed         string // the actor killed, if any
	failure         string
}

const chockName = "7"

func newWindowCase(t *testing.T, cli *clientv3.Client, cache *libmap.Cache, dir, node string) *windowCase {
	c := &windowCase{t: t, cli: cli, cache: cache, node: node,
		layout: composer.Layout{Nodelocal: filepath.Join(dir, "nodelocal")}, actors: map[string]*actor{}}
	c.path = c.layout.Path(libmap.ChocksIdx, chockName)
	if err := os.MkdirAll(filepath.Dir(c.path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.path, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Stamped before the run: garbage, collectible by it.
	if _, err := cache.Stamp(context.Background(), libmap.ChocksIdx, node, chockName); err != nil {
		t.Fatal(err)
	}
	return c
}

// decision is one point of a schedule where more than one thing could
// happen next.
type decision struct {
	options []string
	taken   string
}

type schedule []decision

func (s schedule) taken() []string {
	out := make([]string, len(s))
	for i, d := range s {
		out[i] = d.taken
	}
	return out
}

// run plays the schedule whose first choices are prefix, then the first
// option at every later decision, and returns every decision taken.
func (c *windowCase) run(prefix []string) schedule {
	ctx := context.Background()
	g := c.spawn("gc", func(point func(string)) {
		restore := gc.SetTestHookStep(func(step, path string) {
			if path == c.path {
				point(step)
			}
		})
		defer restore()
		if _, err := gc.Run(ctx, c.cli, gc.Config{Node: c.node, Layout: c.layout}); err != nil && c.crashed != "gc" {
			c.fail("gc run: %v", err)
		}
	})
	c.spawn("composer", func(point func(string)) {
		existed, err := composer.Put(ctx, c.cache, c.layout, libmap.ChocksIdx, c.node, chockName, []byte("v2"),
			composer.BeforeStep(func(step string) {
				if step == composer.StepStamp {
					c.renamed = true
				}
				point(step)
			}))
		if err != nil {
			c.fail("composer: %v", err)
		}
		c.exists, c.renamed = existed, c.renamed || (!existed && err == nil)
	})
	_ = g

	var sched schedule
	for {
		opts := c.options()
		if len(opts) == 0 {
			break
		}
		choice := opts[0]
		if i := len(sched); i < len(prefix) {
			choice = prefix[i]
		}
		if len(opts) > 1 {
			sched = append(sched, decision{options: opts, taken: choice})
		}
		c.do(choice)
	}
	c.check("once every process finished or was recovered")
	// The killed process was only paused after all: it wakes up.
	for _, a := range c.actors {
		if a.frozen {
			a.wake()
		}
	}
	if _, err := gc.Recover(ctx, c.cli, []string{c.layout.Nodelocal}, 0); err != nil {
		c.fail("recover: %v", err)
	}
	c.check("after the killed process woke up")
	if n := gc.AsideFiles(c.layout.Nodelocal); n != 0 {
		c.fail("%d files left set aside", n)
	}
	return sched
}

// options are what may happen next: a step of any actor waiting at a
// point, or, while nothing was killed yet, the kill of the GC or of the
// composer where it waits.
func (c *windowCase) options() []string {
	var opts []string
	for _, name := range []string{"gc", "composer", "recovery"} {
		if a := c.actors[name]; a != nil && a.waiting() {
			opts = append(opts, name)
		}
	}
	if c.crashed == "" {
		for _, name := range []string{"gc", "composer"} {
			if a := c.actors[name]; a != nil && a.waiting() {
				opts = append(opts, "kill-"+name)
			}
		}
	}
	return opts
}

func (c *windowCase) do(choice string) {
	if name, ok := strings.CutPrefix(choice, "kill-"); ok {
		c.crashed = name
		c.actors[name].frozen = true
		if name == "gc" {
			// kill -9, then its lease expires; a recovery (the next GC or
			// the sidecar) is then free to run at any point.
			revokeInstance(c.t, c.cli, "/rok/gc/instances/"+c.node)
			c.spawn("recovery", func(point func(string)) {
				point("recover")
				if _, err := gc.Recover(context.Background(), c.cli, []string{c.layout.Nodelocal}, 0); err != nil {
					c.fail("recover: %v", err)
				}
			})
		}
		return
	}
	c.actors[choice].step()
}

// check asserts the property on storage and in etcd.
func (c *windowCase) check(when string) {
	data, err := os.ReadFile(c.path)
	present := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.t.Fatal(err)
	}
	resp, err := c.cli.Get(context.Background(), c.cache.Key(libmap.ChocksIdx, libmap.ChocksIdx.ID(c.node, chockName)))
	if err != nil {
		c.t.Fatal(err)
	}
	keyed := len(resp.Kvs) > 0
	switch {
	case c.exists && string(data) != "v1":
		c.fail("%s: the composer was told the chock exists and relies on it, but its file is %s", when, describe(present, data))
	case c.renamed && string(data) != "v2":
		c.fail("%s: the composer wrote the chock again, but its file is %s", when, describe(present, data))
	case keyed && !present:
		c.fail("%s: the chock has an epoch key (%s) but no file", when, resp.Kvs[0].Value)
	}
}

func describe(present bool, data []byte) string {
	if !present {
		return "gone"
	}
	return fmt.Sprintf("%q", data)
}

func (c *windowCase) fail(format string, args ...any) {
	if c.failure == "" {
		c.failure = fmt.Sprintf(format, args...)
	}
}

// actor is one process of a schedule: it runs on its own goroutine and
// stops at each point until the scheduler lets it take the next step.
type actor struct {
	t      *testing.T
	name   string
	park   chan string
	resume chan struct{}
	done   chan struct{}
	at     string // the point it waits at; "" once finished
	frozen bool   // killed: never scheduled again
	free   atomic.Bool
}

func (c *windowCase) spawn(name string, fn func(point func(string))) *actor {
	a := &actor{t: c.t, name: name, park: make(chan string), resume: make(chan struct{}), done: make(chan struct{})}
	c.actors[name] = a
	point := func(step string) {
		if a.free.Load() {
			return
		}
		a.park <- step
		<-a.resume
	}
	go func() {
		defer close(a.done)
		fn(point)
	}()
	a.settle()
	return a
}

func (a *actor) waiting() bool { return a.at != "" && !a.frozen }

// settle waits until the actor reaches its next point or ends. The bound
// only turns a deadlock into a failure naming the actor; it judges
// nothing about speed.
func (a *actor) settle() {
	select {
	case st := <-a.park:
		a.at = st
	case <-a.done:
		a.at = ""
	case <-time.After(time.Minute):
		a.t.Fatalf("%s neither reached a point nor ended (last at %q)", a.name, a.at)
	}
}

func (a *actor) step() {
	a.resume <- struct{}{}
	a.settle()
}

// wake lets a killed actor run to its end without stopping.
func (a *actor) wake() {
	a.free.Store(true)
	if a.at != "" {
		a.resume <- struct{}{}
	}
	select {
	case <-a.done:
	case <-time.After(time.Minute):
		a.t.Fatalf("%s did not end after waking up", a.name)
	}
	a.at, a.frozen = "", false
}
