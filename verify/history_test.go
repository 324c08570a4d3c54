package verify_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/upgrade"
	"github.com/rokup/rokup/verify"
)

const (
	election = "/rok/upgrade/leader/"
	fence    = "/rok/fence/gc"
	keyA     = election + "aaa" // node-1's campaign
	keyB     = election + "bbb" // node-2's campaign
)

var leaderOnly = verify.LeaderOnly{Prefixes: []string{"/epochs/maps-ca/", "/rok/gw/"}, Keys: []string{fence}}

func put(key string, rev, create int64, v string) verify.Event {
	return verify.Event{Key: key, Rev: rev, Create: create, Value: []byte(v)}
}

func del(key string, rev int64, prev string) verify.Event {
	return verify.Event{Key: key, Rev: rev, Delete: true, Prev: []byte(prev)}
}

// A run with a leader change: node-1 leads from 10, its session expires at
// 20, node-2 (waiting since 12) leads from there.
func handover() []verify.Event {
	return []verify.Event{
		put(keyA, 10, 10, "node-1"),
		put(keyB, 12, 12, "node-2"),
		put(fence, 13, 13, `{"holder":"upgrade/u"}`),
		put("/epochs/maps-ca/aa", 15, 15, "1"),
		del(keyA, 20, "node-1"),
		put("/epochs/maps-ca/bb", 21, 21, "1"),
		put("/rok/gw/doc", 22, 22, "x"),
		del(fence, 23, `{"holder":"upgrade/u"}`),
	}
}

var terms = []upgrade.Term{{Node: "node-1", Key: keyA, Rev: 10}, {Node: "node-2", Key: keyB, Rev: 12}}

func TestLeaderWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		events []verify.Event
		terms  []upgrade.Term
		until  int64
		want   string // "" = the check passes; else a piece of its detail
	}{
		{name: "writes inside the terms", events: handover(), terms: terms, until: 23},
		{name: "a document lease expiring is no one's write", events: append(handover(), del("/rok/gw/ttl", 24, "x")), terms: terms},
		{
			// node-1 paused, lost its key at 20, wakes with no successor yet
			// and writes without its guard.
			name: "a deposed master writes while no one leads",
			events: []verify.Event{
				put(keyA, 10, 10, "node-1"), put("/epochs/maps-ca/aa", 15, 15, "1"),
				del(keyA, 20, "node-1"), put("/epochs/maps-ca/bb", 21, 21, "1"),
			},
			terms: terms[:1], want: "while no one was master",
		},
		{
			name:   "a deposed master wakes after the run ended",
			events: append(handover(), put("/epochs/maps-ca/cc", 30, 30, "1")),
			terms:  terms, until: 25, want: "after the run ended at 25",
		},
		{name: "a write under a term the run did not record", events: handover(), terms: terms[:1], want: "which the run did not record"},
		{name: "a fence lifted by a deposed master", events: []verify.Event{
			put(keyA, 10, 10, "node-1"), put(fence, 13, 13, "{}"), del(keyA, 20, "node-1"), del(fence, 21, "{}"),
		}, terms: terms[:1], want: "delete /rok/fence/gc at 21 while no one was master"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := verify.LeaderWrites(&verify.History{To: 40, Events: tc.events}, election, leaderOnly, tc.terms, tc.until)
			checkVerdict(t, c, tc.want)
		})
	}
}

func TestFenceWindow(t *testing.T) {
	gcDelete := del("/epochs/chocks-ca/ff", 18, "1")
	for _, tc := range []struct {
		name   string
		events []verify.Event
		done   bool
		want   string
	}{
		{name: "stamps inside, GC outside", events: append(handover(), del("/epochs/chocks-ca/ff", 30, "1")), done: true},
		{name: "a GC deletion inside the window", events: insert(handover(), gcDelete), done: true, want: "deleted at 18 inside the fence [13, 23]"},
		{name: "a stamp before the fence", events: insert(handover(), put("/epochs/maps-uuid/node-1/x", 11, 11, "1")), want: "stamped at 11 before the fence was set at 13"},
		{name: "the fence dropped and set again", events: insert(handover(), del(fence, 16, ""), put(fence, 17, 17, `{"holder":"upgrade/u"}`)), want: "set 2 times"},
		{name: "never fenced", events: handover()[:2], want: "never set"},
		{name: "still fenced after the run", events: handover()[:7], done: true, want: "still held"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &verify.History{To: 40, Events: tc.events}
			checkVerdict(t, verify.FenceWindow(h, fence, "/epochs/", "upgrade/u", 1, 25, tc.done), tc.want)
		})
	}
}

// insert adds events into a history in revision order.
func insert(evs []verify.Event, more ...verify.Event) []verify.Event {
	out := append([]verify.Event{}, evs...)
	for _, m := range more {
		i := 0
		for i < len(out) && out[i].Rev < m.Rev {
			i++
		}
		out = append(out[:i], append([]verify.Event{m}, out[i:]...)...)
	}
	return out
}

func TestDeletions(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m := seed.ManifestOf([]seed.Object{
		{Scope: libmap.ChocksCA, Name: "aa", Path: file("aa")},
		{Scope: libmap.ChocksCA, Name: "bb", Path: file("bb"), Reachable: true},
		{Scope: libmap.ChocksCA, Name: "cc", Path: file("cc")},
	}, []seed.Bad{{Scope: libmap.ChocksCA, Path: file("tmp.partial")}})
	cache := libmap.New(nil)
	epochAt := func(rev int64, e string) verify.Event { return put(cache.EpochKey(), rev, 1, e) }
	aa, cc := cache.Key(libmap.ChocksCA, "aa"), cache.Key(libmap.ChocksCA, "cc")
	for _, tc := range []struct {
		name   string
		remove []string
		events []verify.Event
		want   string
	}{
		{name: "nothing deleted"},
		{name: "an old-epoch garbage chock collected", remove: []string{"aa"},
			events: []verify.Event{epochAt(5, "1"), put(aa, 6, 6, "1"), epochAt(7, "2"), del(aa, 8, "1")}},
		{name: "a reachable chock deleted", remove: []string{"bb"}, want: "reachable, deleted"},
		{name: "a chock deleted without an epoch", remove: []string{"cc"}, want: "it had no epoch"},
		{name: "a chock touched after the GC began deleted", remove: []string{"cc"},
			events: []verify.Event{epochAt(5, "1"), put(cc, 6, 6, "1"), epochAt(7, "2"), put(cc, 8, 6, "2"), del(cc, 9, "2")},
			want:   "epoch 2, not older than the current 2"},
		{name: "a bad entry deleted", remove: []string{"tmp.partial"}, want: "bad entry deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range tc.remove {
				p := filepath.Join(dir, n)
				if err := os.Rename(p, p+".away"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = os.Rename(p+".away", p) })
			}
			checkVerdict(t, verify.Deletions(&verify.History{To: 40, Events: tc.events}, cache, m), tc.want)
		})
	}
}

func checkVerdict(t *testing.T, c verify.Check, want string) {
	t.Helper()
	switch {
	case want == "" && !c.OK:
		t.Fatalf("%s failed: %s", c.Name, c.Detail)
	case want != "" && c.OK:
		t.Fatalf("%s passed (%s), want a violation about %q", c.Name, c.Detail, want)
	case want != "" && !strings.Contains(c.Detail, want):
		t.Fatalf("%s: detail %q does not mention %q", c.Name, c.Detail, want)
	}
}

// ReadHistory sees puts, deletes with their last value, and lease expiry.
func TestReadHistory(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := context.Background()
	start, err := cli.Put(ctx, "/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/a", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpDelete("/a"), clientv3.OpPut("/b", "3")).Commit(); err != nil {
		t.Fatal(err)
	}
	h, err := verify.ReadHistory(ctx, cli, start.Header.Revision)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h.Events {
		if e.Delete {
			got = append(got, "del "+e.Key+" was "+string(e.Prev))
		} else {
			got = append(got, "put "+e.Key+"="+string(e.Value))
		}
	}
	want := "[put /a=1 put /a=2 del /a was 2 put /b=3]"
	if s := "[" + strings.Join(got, " ") + "]"; s != want {
		t.Fatalf("history %s, want %s", s, want)
	}
	if h.Events[2].Rev != h.Events[3].Rev || h.To != h.Events[3].Rev {
		t.Fatalf("one transaction, one revision: %+v (to %d)", h.Events, h.To)
	}
}

// StorageIntact fails when a seeded file or bad entry is gone.
func TestStorageIntactSeesALostFile(t *testing.T) {
	dir := t.TempDir()
	obj, bad := filepath.Join(dir, "obj"), filepath.Join(dir, "tmp.partial")
	for _, p := range []string{obj, bad} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := seed.ManifestOf([]seed.Object{{Scope: libmap.ChocksCA, Name: "aa", Path: obj}}, []seed.Bad{{Path: bad}})
	checkVerdict(t, verify.StorageIntact(m), "")
	for _, p := range []string{obj, bad} {
		if err := os.Rename(p, p+".away"); err != nil {
			t.Fatal(err)
		}
		checkVerdict(t, verify.StorageIntact(m), "1 files gone, e.g. "+p)
		if err := os.Rename(p+".away", p); err != nil {
			t.Fatal(err)
		}
	}
}
