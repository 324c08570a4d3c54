package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/libmap"
)

// The GC window under load, with real processes: rok-gc --ca sweeps a
// store of garbage chocks while composer processes store random ones of
// them again (composer.Put: touch; on "missing" write, rename, stamp).
// Afterwards every object with an epoch key has its file, with the bytes
// its name is the hash of, and nothing is left set aside. (The GC before
// the tombstone protocol lost a few objects per round here: the composer
// rewrote a file between the GC's commit and its unlink.)
func TestComposersRewritingWhileRokGCSweeps(t *testing.T) {
	s := newGCStress(t, stressObjects(t), 4)
	s.startComposers()
	out, code := s.rokGC()
	if code != 0 {
		t.Fatalf("rok-gc exit %d:\n%s", code, out)
	}
	s.stopComposers()
	if broken := s.check(); len(broken) > 0 {
		t.Error(strings.Join(broken, "\n"))
	}
}

// kill -9 of rok-gc mid-sweep while composers store objects: once the dead
// instance's lease is gone, the next rok-gc puts back what the killed one
// had set aside, before its mark; then a composer reads every live object.
func TestRokGCKilledMidSweepThenEveryLiveObjectReads(t *testing.T) {
	if broken := runKillGC(t, 1, stressObjects(t)/5, 500); len(broken) > 0 {
		t.Error(strings.Join(broken, "\n"))
	}
}

// runKillGC is the kill -9 scenario on n garbage objects, rok-gc killed
// once it has deleted after epoch keys; the soak matrix runs it with
// random sizes and kill points (fault "kill-gc").
func runKillGC(t *testing.T, seedN int64, n, after int) []string {
	s := newGCStress(t, n, 2)
	s.startComposers()

	// Kill it once deletions are flowing: a watch on the epoch keys, not a
	// delay, says when.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start, err := s.cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	events := s.cli.Watch(ctx, s.cache.ScopePrefix(libmap.ChocksCA, ""), clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	p := s.startGC()
	exited := make(chan struct{})
	go func() { p.Wait(); close(exited) }()
	deleted := 0
	for deleted < after {
		select {
		case resp := <-events:
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					deleted++
				}
			}
		case <-exited:
			return []string{fmt.Sprintf("rok-gc ended after %d deletions, before the kill point (%d)", deleted, after)}
		}
	}
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	t.Logf("seed %d: rok-gc killed after %d deletions; %d files set aside", seedN, deleted, gc.AsideFiles(s.root))

	// Its lease would expire within the instance TTL; revoking it is that
	// expiry, now.
	resp, err := s.cli.Get(ctx, fencingInstanceKey)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("the killed GC's instance key: %v", err)
	}
	if _, err := s.cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if out, code := s.rokGC(); code != 0 {
		return []string{fmt.Sprintf("the next rok-gc: exit %d: %s", code, out)}
	}
	s.stopComposers()
	return s.check()
}

const fencingInstanceKey = "/rok/gc/instances/_ca"

// stressObjects is 100 000 garbage chocks, or ROKUP_GC_STRESS_OBJECTS.
func stressObjects(t *testing.T) int {
	if v := os.Getenv("ROKUP_GC_STRESS_OBJECTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("ROKUP_GC_STRESS_OBJECTS=%q: want a number ≥ 100", v)
		}
		return n
	}
	if testing.Short() {
		return 10000
	}
	return 100000
}

type gcStress struct {
	t         *testing.T
	bin       string
	m         *embed.Member
	cli       *clientv3.Client
	cache     *libmap.Cache
	root      string
	names     string // file listing the garbage: "<hash> <content>" per line
	live      []string
	composers []*composerProc
}

type composerProc struct {
	cmd    *exec.Cmd
	out    *bufio.Scanner
	exists atomic.Int64
	wrote  atomic.Int64
	lines  chan string
	done   chan struct{}
}

func newGCStress(t *testing.T, n, composers int) *gcStress {
	bin, err := harness.Binaries()
	if err != nil {
		t.Fatal(err)
	}
	m := embed.NewTestMember(t)
	s := &gcStress{t: t, bin: bin, m: m, cli: embed.NewTestClient(t, m.Endpoints()), root: filepath.Join(t.TempDir(), "local")}
	s.cache = libmap.New(s.cli)
	layout := composer.Layout{Local: s.root}
	ctx := context.Background()

	// n garbage chocks, stamped; 50 live ones under a map a Gateway
	// version names.
	list, err := os.Create(filepath.Join(t.TempDir(), "garbage"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(list)
	st, err := s.cache.NewStamper(ctx, libmap.ChocksCA, "", libmap.StampConfig{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(content string) string {
		h := sha256.Sum256([]byte(content))
		name := hex.EncodeToString(h[:])
		path := layout.Path(libmap.ChocksCA, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := st.Add(name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	for i := 0; i < n; i++ {
		content := fmt.Sprintf("garbage chock %d", i)
		fmt.Fprintf(w, "%s %s\n", put(content), content)
	}
	var refs []composer.Ref
	for i := 0; i < 50; i++ {
		name := put(fmt.Sprintf("live chock %d", i))
		s.live = append(s.live, layout.Path(libmap.ChocksCA, name))
		refs = append(refs, composer.Ref{Scope: libmap.ChocksCA, Name: name})
	}
	if _, err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var mapFile strings.Builder
	if err := composer.WriteMap(&mapFile, refs); err != nil {
		t.Fatal(err)
	}
	mh := sha256.Sum256([]byte(mapFile.String()))
	mapName := hex.EncodeToString(mh[:])
	mapPath := layout.Path(libmap.MapsCA, mapName)
	if err := os.MkdirAll(filepath.Dir(mapPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mapPath, []byte(mapFile.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	s.live = append(s.live, mapPath)
	if _, err := s.cli.Put(ctx, "/rok/gw/versions/b/o/v1", `{"map":"maps-ca/`+mapName+`"}`); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	list.Close()
	s.names = list.Name()
	s.composers = make([]*composerProc, composers)
	return s
}

// startComposers starts the composer processes and waits until each has
// been told "exists" once: they run before the GC begins.
func (s *gcStress) startComposers() {
	for i := range s.composers {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(),
			"ROKUP_TEST_COMPOSER=1",
			"ROKUP_TEST_COMPOSER_ENDPOINTS="+strings.Join(s.m.Endpoints(), ","),
			"ROKUP_TEST_COMPOSER_ROOT="+s.root,
			"ROKUP_TEST_COMPOSER_LIST="+s.names,
			"ROKUP_TEST_COMPOSER_SEED="+strconv.Itoa(i+1))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			s.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			s.t.Fatal(err)
		}
		c := &composerProc{cmd: cmd, out: bufio.NewScanner(stdout), lines: make(chan string, 16), done: make(chan struct{})}
		go func() {
			defer close(c.done)
			for c.out.Scan() {
				switch line := c.out.Text(); {
				case line == "exists":
					c.exists.Add(1)
				case line == "wrote":
					c.wrote.Add(1)
				default:
					select {
					case c.lines <- line:
					default:
					}
				}
			}
		}()
		s.composers[i] = c
		s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, c := range s.composers {
		s.waitFor(c, func() bool { return c.exists.Load() > 0 }, "its first \"exists\"")
	}
}

// stopComposers waits until each composer was also told "missing" and
// wrote an object again (the GC collected it under their feet), then stops
// them.
func (s *gcStress) stopComposers() {
	var exists, wrote int64
	for _, c := range s.composers {
		s.waitFor(c, func() bool { return c.wrote.Load() > 0 }, "its first rewrite")
		c.cmd.Process.Signal(syscall.SIGTERM)
		<-c.done
		if err := c.cmd.Wait(); err != nil {
			s.t.Fatalf("composer: %v", err)
		}
		exists += c.exists.Load()
		wrote += c.wrote.Load()
	}
	s.t.Logf("composers: told exists %d times, rewrote %d objects", exists, wrote)
}

// waitFor polls a composer's counters; the bound only turns a stuck
// composer into a failure.
func (s *gcStress) waitFor(c *composerProc, ok func() bool, what string) {
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		select {
		case <-c.done:
			s.t.Fatalf("a composer ended before %s", what)
		case line := <-c.lines:
			s.t.Fatalf("composer: %s", line)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("a composer did not reach %s", what)
		}
	}
}

func (s *gcStress) gcArgs() []string {
	return []string{"--ca", "--endpoints", strings.Join(s.m.Endpoints(), ","), "--local-root", s.root, "-o", "json"}
}

func (s *gcStress) rokGC() (string, int) {
	cmd := exec.Command(filepath.Join(s.bin, "rok-gc"), s.gcArgs()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		s.t.Fatal(err)
	}
	return string(out), 0
}

func (s *gcStress) startGC() *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, "rok-gc"), s.gcArgs()...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	return cmd
}

// check is what a composer reading every live object finds: each object
// with an epoch key has its file, with the bytes its name is the hash of;
// the live objects are there; nothing is left set aside.
func (s *gcStress) check() (broken []string) {
	ctx := context.Background()
	layout := composer.Layout{Local: s.root}
	keyed, collected := 0, 0
	err := s.cache.Scan(ctx, libmap.ChocksCA, "", func(e libmap.Entry) error {
		keyed++
		path := layout.Path(libmap.ChocksCA, e.ID)
		data, err := os.ReadFile(path)
		if err != nil {
			broken = append(broken, fmt.Sprintf("%s has an epoch key (%d) but its file: %v", e.ID, e.Epoch, err))
			return nil
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != e.ID {
			broken = append(broken, fmt.Sprintf("%s: the file holds other bytes (%q)", e.ID, data))
		}
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, p := range s.live {
		if _, err := os.Stat(p); err != nil {
			broken = append(broken, fmt.Sprintf("live object lost: %v", err))
		}
	}
	f, err := os.Open(s.names)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), " ")
		if _, err := os.Lstat(layout.Path(libmap.ChocksCA, name)); err != nil {
			collected++
		}
	}
	if n := gc.AsideFiles(s.root); n != 0 {
		broken = append(broken, fmt.Sprintf("%d files left set aside", n))
	}
	if collected == 0 {
		broken = append(broken, "the GC collected nothing: the scenario proves nothing")
	}
	s.t.Logf("%d objects keep an epoch key and their file; %d garbage objects collected", keyed, collected)
	return broken
}

// runComposer is the composer process (TestMain runs it when
// ROKUP_TEST_COMPOSER is set): it stores random objects of the list with
// composer.Put until SIGTERM, and prints "exists" or "wrote" for each.
func runComposer() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(os.Getenv("ROKUP_TEST_COMPOSER_ENDPOINTS"), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer cli.Close()
	data, err := os.ReadFile(os.Getenv("ROKUP_TEST_COMPOSER_LIST"))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var names, contents []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		name, content, _ := strings.Cut(line, " ")
		names, contents = append(names, name), append(contents, content)
	}
	seedN, _ := strconv.Atoi(os.Getenv("ROKUP_TEST_COMPOSER_SEED"))
	rng := rand.New(rand.NewSource(int64(seedN)))
	cache := libmap.New(cli)
	layout := composer.Layout{Local: os.Getenv("ROKUP_TEST_COMPOSER_ROOT")}
	out := bufio.NewWriter(os.Stdout)
	for ctx.Err() == nil {
		i := rng.Intn(len(names))
		// Each Put runs to its end: a composer stopped between its steps
		// is the kill case, not this one.
		existed, err := composer.Put(context.Background(), cache, layout, libmap.ChocksCA, "", names[i], []byte(contents[i]))
		if err != nil {
			fmt.Fprintln(out, "error:", err)
			out.Flush()
			return 1
		}
		if existed {
			fmt.Fprintln(out, "exists")
		} else {
			fmt.Fprintln(out, "wrote")
		}
		out.Flush()
	}
	return 0
}
