package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/embed"
)

// walked is what one walk saw: every document (value, and whether it has
// an expiry) and every empty directory.
type walked struct {
	docs  map[string]string
	ttl   map[string]bool
	empty []string
}

func walkAll(t *testing.T, w *walker, prefix string) walked {
	t.Helper()
	got := walked{docs: map[string]string{}, ttl: map[string]bool{}}
	_, err := w.walk(ctxT(t), prefix, func(leaves []*clientv2.Node) error {
		for _, n := range leaves {
			if _, dup := got.docs[n.Key]; dup {
				return fmt.Errorf("%s seen twice", n.Key)
			}
			got.docs[n.Key] = n.Value
			got.ttl[n.Key] = n.Expiration != nil
		}
		return nil
	}, func(dir string) { got.empty = append(got.empty, dir) })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.empty)
	return got
}

func TestWalkByWholeSubtreesSeesWhatALevelAtATimeSees(t *testing.T) {
	e := newEnv(t, small)
	fast := newWalker(e.kapi, 0)
	if fast.tree == nil {
		t.Fatal("the test's v2 client cannot read subtrees")
	}
	slow := newWalker(e.kapi, -1)
	a, b := walkAll(t, fast, DefaultPrefix), walkAll(t, slow, DefaultPrefix)
	if !maps.Equal(a.docs, e.store.docs) {
		t.Fatalf("whole-subtree walk: %d documents, the store holds %d", len(a.docs), len(e.store.docs))
	}
	if !maps.Equal(a.docs, b.docs) || !maps.Equal(a.ttl, b.ttl) || !slices.Equal(a.empty, b.empty) {
		t.Fatalf("walks differ: %d/%d docs, empty dirs %v / %v", len(a.docs), len(b.docs), a.empty, b.empty)
	}
	for k := range e.store.ttl {
		if !a.ttl[k] {
			t.Fatalf("%s lost its expiry", k)
		}
	}
	if want := slices.Sorted(slices.Values(e.store.empty)); !slices.Equal(a.empty, want) {
		t.Fatalf("empty dirs %v, want %v", a.empty, want)
	}
	if fast.stats.Whole == 0 || fast.stats.Reads >= slow.stats.Reads {
		t.Fatalf("whole-subtree walk made %d reads (%d whole), a level at a time %d", fast.stats.Reads, fast.stats.Whole, slow.stats.Reads)
	}
	t.Logf("reads: %d (%d whole) against %d a level at a time", fast.stats.Reads, fast.stats.Whole, slow.stats.Reads)
}

func TestWalkDropsASubtreeOverTheBudgetAndRemembersIt(t *testing.T) {
	m := embed.NewTestMember(t)
	kapi := embed.NewTestV2(t, m.Endpoints())
	ctx := ctxT(t)
	want := map[string]string{}
	set := func(k, v string) {
		if _, err := kapi.Set(ctx, k, v, nil); err != nil {
			t.Fatal(err)
		}
		want[k] = v
	}
	// A family of ten: the two sampled (first in order) hold a document
	// each; a05 holds 200 KiB, over the 64 KiB budget.
	for i := 0; i < 10; i++ {
		set(fmt.Sprintf("/p/fam/a%02d/doc", i), "small")
	}
	for j := 0; j < 200; j++ {
		set(fmt.Sprintf("/p/fam/a05/big/doc-%03d", j), strings.Repeat("x", 1024))
	}
	w := newWalker(kapi, 64<<10)
	for pass := 1; pass <= 2; pass++ {
		before := w.stats
		got := walkAll(t, w, "/p")
		if !maps.Equal(got.docs, want) {
			t.Fatalf("pass %d: %d documents, want %d", pass, len(got.docs), len(want))
		}
		dropped := w.stats.Dropped - before.Dropped
		if wantDrop := int64(map[int]int{1: 1, 2: 0}[pass]); dropped != wantDrop {
			t.Fatalf("pass %d: %d reads dropped, want %d", pass, dropped, wantDrop)
		}
		if w.stats.Whole-before.Whole < 7 {
			t.Fatalf("pass %d: %d whole reads, want the 7 small siblings at least", pass, w.stats.Whole-before.Whole)
		}
	}
	if !w.big["/p/fam/a05"] {
		t.Fatalf("the walker did not remember /p/fam/a05: %v", w.big)
	}
}

// A family whose samples are large is read a level at a time: no
// subtree read is tried, so none is dropped.
func TestWalkReadsAFamilyOfLargeSamplesALevelAtATime(t *testing.T) {
	m := embed.NewTestMember(t)
	kapi := embed.NewTestV2(t, m.Endpoints())
	ctx := ctxT(t)
	for i := 0; i < 9; i++ {
		for j := 0; j < 20; j++ {
			if _, err := kapi.Set(ctx, fmt.Sprintf("/p/fam/a%02d/doc-%02d", i, j), strings.Repeat("y", 1024), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	w := newWalker(kapi, 64<<10) // samples of 20 KiB > 64 KiB / 8
	got := walkAll(t, w, "/p")
	if len(got.docs) != 180 || w.stats.Whole != 0 || w.stats.Dropped != 0 {
		t.Fatalf("%d documents, %d whole reads, %d dropped; want 180, 0, 0", len(got.docs), w.stats.Whole, w.stats.Dropped)
	}
}

// The reads that find work go first, the last pushed first; then the
// released families' members, one of each family in turn, each family's
// in its order, until every lane is empty.
func TestJobQueueTakesTheFamiliesInTurn(t *testing.T) {
	var q jobQueue
	job := func(dir string) walkJob { return walkJob{dir: dir} }
	q.addLane([]walkJob{job("v/1"), job("v/2"), job("v/3")})
	q.addLane(nil) // a family with no members left adds no turn
	q.addLane([]walkJob{job("o/1")})
	q.addLane([]walkJob{job("s/1"), job("s/2")})
	q.push(job("level-a"))
	q.push(job("level-b"))
	var got []string
	for !q.empty() {
		got = append(got, q.pop().dir)
		if len(got) == 3 {
			q.push(job("level-c")) // found while the lanes are read: it goes next
		}
	}
	want := []string{"level-b", "level-a", "v/1", "level-c", "o/1", "s/1", "v/2", "s/2", "v/3"}
	if !slices.Equal(got, want) {
		t.Fatalf("reads in the order %v, want %v", got, want)
	}
}

// countingReader counts the reads a walk makes through a conn.Keys.
type countingReader struct {
	clientv2.KeysAPI
	tree  subtreeReader
	reads atomic.Int64
}

func (c *countingReader) Read(ctx context.Context, key string, recursive bool, max int64) (*clientv2.Node, uint64, error) {
	c.reads.Add(1)
	return c.tree.Read(ctx, key, recursive, max)
}

// A Gateway's versions: one directory per object, alike ones in alike
// buckets. WalkV2 must see every document once, call fn one read at a
// time, and read the buckets whole rather than one request per object.
func TestWalkV2ReadsATreeOfSmallDirectoriesWholeAndEveryDocumentOnce(t *testing.T) {
	ctx := ctxT(t)
	m := embed.NewTestMember(t)
	kapi := embed.NewTestV2(t, m.Endpoints())
	var want []string
	set := func(k string) {
		if _, err := kapi.Set(ctx, k, `{"map":"x"}`, nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	const buckets, objects = 12, 20
	for b := 0; b < buckets; b++ {
		for o := 0; o < objects; o++ {
			set(fmt.Sprintf("/v/b%02d/o%02d/1", b, o))
		}
	}
	set("/v/top")
	set("/v/b03/deep/er/x")
	if _, err := kapi.Set(ctx, "/v/empty", "", &clientv2.SetOptions{Dir: true}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	r := &countingReader{KeysAPI: kapi, tree: kapi.(subtreeReader)}
	var inFn atomic.Int32
	walk := func(dir string) ([]string, error) {
		var got []string
		err := WalkV2(ctx, r, dir, func(leaves []*clientv2.Node) error {
			if inFn.Add(1) != 1 {
				t.Errorf("fn called while another call runs")
			}
			defer inFn.Add(-1)
			for _, n := range leaves {
				got = append(got, n.Key)
			}
			return nil
		})
		slices.Sort(got)
		return got, err
	}
	got, err := walk("/v")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("walked %d documents (%v), want the %d written, each once", len(got), err, len(want))
	}
	// A level at a time costs a read per directory: 1 + 12 + 240 and
	// more. Sampling two buckets and reading the others whole costs
	// about 1 + 2×(1+20) + 10.
	if dirs := int64(1 + buckets + buckets*objects); r.reads.Load()*4 > dirs {
		t.Fatalf("%d reads for %d directories: the buckets were not read whole", r.reads.Load(), dirs)
	}
	t.Logf("%d reads for %d directories", r.reads.Load(), 1+buckets+buckets*objects)
	if got, err := walk("/v/top"); err != nil || !slices.Equal(got, []string{"/v/top"}) {
		t.Fatalf("a document walked alone: %v, %v", got, err)
	}
	if got, err := walk("/missing"); err != nil || len(got) != 0 {
		t.Fatalf("a missing dir: %v, %v", got, err)
	}
	stop := errors.New("stop")
	if err := WalkV2(ctx, r, "/v", func([]*clientv2.Node) error { return stop }); err != stop {
		t.Fatalf("fn's error came back as %v", err)
	}
}
