package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
	"github.com/rokup/rokup/upgrade"
)

// The invariants below judge what happened, not only how things ended: they
// read the v3 store's history (every put and delete with its revision, which
// etcd keeps until a compaction) and place each write against the
// leadership terms and the GC fence. etcd orders every change by one
// revision counter, so "before" and "inside" are exact, not timing guesses.

// Event is one change of a v3 key, as a watch reports it.
type Event struct {
	Key    string
	Rev    int64 // the revision of the change (a delete's own revision)
	Create int64 // the key's create revision (puts only)
	Delete bool
	Value  []byte // the new value (puts)
	Prev   []byte // the value before (deletes; nil if unknown)
}

// History is every change of the v3 store from revision From to To.
type History struct {
	From, To int64
	Events   []Event
}

// ErrCompacted is returned when the history asked for was compacted away.
var ErrCompacted = errors.New("verify: history compacted")

// ReadHistory reads every change of the whole v3 keyspace from revision
// from (1 for everything) up to the current revision, with each deleted
// key's last value. It needs the history uncompacted, as the test and
// rehearsal clusters keep it.
func ReadHistory(ctx context.Context, cli *clientv3.Client, from int64) (*History, error) {
	if from < 1 {
		from = 1
	}
	head, err := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("verify: read revision: %w", err)
	}
	h := &History{From: from, To: head.Header.Revision}
	if h.To < from {
		return h, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(clientv3.WithRequireLeader(wctx), "\x00", clientv3.WithFromKey(),
		clientv3.WithRev(from), clientv3.WithPrevKV())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return nil, fmt.Errorf("%w: asked from %d, compacted at %d", ErrCompacted, from, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return nil, fmt.Errorf("verify: watch history: %w", err)
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision > h.To {
				return h, nil
			}
			e := Event{Key: string(ev.Kv.Key), Rev: ev.Kv.ModRevision}
			if ev.Type == clientv3.EventTypeDelete {
				e.Delete = true
				if ev.PrevKv != nil {
					e.Prev = ev.PrevKv.Value
				}
			} else {
				e.Create, e.Value = ev.Kv.CreateRevision, ev.Kv.Value
			}
			h.Events = append(h.Events, e)
		}
		if n := len(h.Events); n > 0 && h.Events[n-1].Rev >= h.To {
			return h, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("verify: watch history: %w", err)
	}
	return nil, errors.New("verify: watch history: the watch ended early")
}

// RevOf returns the revision at which key was last put with a value for
// which ok holds, or 0.
func (h *History) RevOf(key string, ok func(value []byte) bool) int64 {
	for i := len(h.Events) - 1; i >= 0; i-- {
		if e := h.Events[i]; e.Key == key && !e.Delete && ok(e.Value) {
			return e.Rev
		}
	}
	return 0
}

// FirstAfter returns the revision of the first put of key after revision
// after whose value ok accepts, or 0.
func (h *History) FirstAfter(key string, after int64, ok func(value []byte) bool) int64 {
	for _, e := range h.Events {
		if e.Key == key && e.Rev > after && !e.Delete && ok(e.Value) {
			return e.Rev
		}
	}
	return 0
}

// Upto is the history up to revision rev (0: all of it).
func (h *History) Upto(rev int64) *History {
	if rev <= 0 || rev >= h.To {
		return h
	}
	out := &History{From: h.From, To: rev}
	for _, e := range h.Events {
		if e.Rev <= rev {
			out.Events = append(out.Events, e)
		}
	}
	return out
}

// LeaderOnly names the writes only a master may make: puts under Prefixes
// or to Keys, and deletes of Keys.
type LeaderOnly struct {
	Prefixes []string
	Keys     []string
}

func (lo LeaderOnly) match(e Event) bool {
	if slices.Contains(lo.Keys, e.Key) {
		return true
	}
	if e.Delete {
		return false // a TTL document's lease expiring is no one's write
	}
	for _, p := range lo.Prefixes {
		if strings.HasPrefix(e.Key, p) {
			return true
		}
	}
	return false
}

// LeaderWrites checks that every leader-only write of the history landed
// while the oldest key under the election prefix — the master at that
// revision — was one of the run's recorded terms, and none after the
// revision until (the run record turning done; 0: no bound), when no master
// of the run is entitled to write any more.
//
// What this can see from outside: a write that landed while no one was
// master, under a term the run never recorded, or after the run ended. What
// it cannot: a deposed master's write landing while its successor leads,
// since values do not name their writer; the paused-master scenarios close
// that gap by waking the deposed master only after the run ended, so any
// write of its lands after until.
func LeaderWrites(h *History, election string, lo LeaderOnly, terms []upgrade.Term, until int64) Check {
	c := Check{Name: "no leader-only write outside a master's term"}
	recorded := map[string]bool{}
	for _, t := range terms {
		recorded[termID(t.Key, t.Rev)] = true
	}
	live := map[string]int64{} // election key → create revision
	var bad []string
	n := 0
	for _, e := range h.Events {
		if strings.HasPrefix(e.Key, election) {
			if e.Delete {
				delete(live, e.Key)
			} else {
				live[e.Key] = e.Create
			}
			continue
		}
		if !lo.match(e) {
			continue
		}
		n++
		key, rev := oldest(live)
		switch {
		case until > 0 && e.Rev > until:
			bad = append(bad, fmt.Sprintf("%s %s at %d, after the run ended at %d", op(e), e.Key, e.Rev, until))
		case key == "":
			bad = append(bad, fmt.Sprintf("%s %s at %d while no one was master", op(e), e.Key, e.Rev))
		case !recorded[termID(key, rev)]:
			bad = append(bad, fmt.Sprintf("%s %s at %d under term %s, which the run did not record", op(e), e.Key, e.Rev, termID(key, rev)))
		}
	}
	if len(bad) > 0 {
		c.Detail = fmt.Sprintf("%d of %d leader-only writes outside a term, e.g. %s", len(bad), n, strings.Join(bad[:min(3, len(bad))], "; "))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d leader-only writes, each inside a recorded term (%d terms)", n, len(terms))
	return c
}

func termID(key string, rev int64) string { return fmt.Sprintf("%s@%d", key, rev) }

func op(e Event) string {
	if e.Delete {
		return "delete"
	}
	return "put"
}

// oldest is the election's owner: the live key with the lowest create
// revision (concurrency.Election's rule).
func oldest(live map[string]int64) (string, int64) {
	key, rev := "", int64(0)
	for k, r := range live {
		if key == "" || r < rev {
			key, rev = k, r
		}
	}
	return key, rev
}

// FenceWindow checks the GC fence of a run held by holder: it was set once
// and never dropped and set again, no epoch was stamped after the run began
// (from) and before the fence was set, and no epoch key was deleted (a GC
// collection) while it was held. With done, the run
// ended and the fence must have been lifted.
func FenceWindow(h *History, fenceKey, epochs, holder string, from, until int64, done bool) Check {
	c := Check{Name: "GC fenced from gc-fence to gc-unfence, no GC deletion inside"}
	if until == 0 {
		until = h.To
	}
	var set, lifted int64
	sets := 0
	for _, e := range h.Events {
		if e.Key != fenceKey || e.Rev < from {
			continue
		}
		switch {
		case !e.Delete && e.Create == e.Rev && strings.Contains(string(e.Value), strconv.Quote(holder)):
			sets++
			if set == 0 {
				set = e.Rev
			}
		case e.Delete && set > 0 && lifted == 0:
			lifted = e.Rev
		}
	}
	switch {
	case set == 0:
		c.Detail = fmt.Sprintf("the fence %s was never set by %q", fenceKey, holder)
		return c
	case sets > 1:
		c.Detail = fmt.Sprintf("the fence was set %d times by %q: it was dropped while the run needed it", sets, holder)
		return c
	case done && lifted == 0:
		c.Detail = fmt.Sprintf("the run ended but its fence (set at %d) is still held", set)
		return c
	}
	end := lifted
	if end == 0 {
		end = h.To + 1
	}
	var bad []string
	stamps, firstStamp, lastStamp := 0, int64(0), int64(0)
	for _, e := range h.Events {
		if !strings.HasPrefix(e.Key, epochs) {
			continue
		}
		if e.Delete && e.Rev > set && e.Rev < end {
			bad = append(bad, fmt.Sprintf("%s deleted at %d inside the fence [%d, %d]", e.Key, e.Rev, set, lifted))
		}
		if !e.Delete && e.Rev >= from && e.Rev <= until {
			stamps++
			if firstStamp == 0 {
				firstStamp = e.Rev
			}
			lastStamp = e.Rev
			// After the lift a GC may stamp (objects without an epoch);
			// a deposed master's stamp there is LeaderWrites' to catch.
			if e.Rev < set {
				bad = append(bad, fmt.Sprintf("%s stamped at %d before the fence was set at %d", e.Key, e.Rev, set))
			}
		}
	}
	if len(bad) > 0 {
		c.Detail = fmt.Sprintf("%d violations, e.g. %s", len(bad), strings.Join(bad[:min(3, len(bad))], "; "))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("fence held over revisions [%d, %d], %d stamps inside it (%d…%d), no epoch deleted", set, lifted, stamps, firstStamp, lastStamp)
	return c
}

// Deletions checks what a GC removed from storage against its rules
// (docs/design.md#gc-rule): no reachable object and no bad entry is gone,
// and every object that is gone had its epoch key deleted while its epoch
// was older than the current epoch at that revision — so it had an epoch
// (none: never collected) and was not stamped or touched after its GC began.
func Deletions(h *History, cache *libmap.Cache, m *seed.Manifest) Check {
	c := Check{Name: "GC deleted only unreachable objects with an old epoch"}
	type del struct {
		rev      int64
		epoch    string // the key's last value
		current  uint64 // the current epoch at the deletion
		hasEpoch bool
	}
	dels := map[string]del{}
	var current uint64
	for _, e := range h.Events {
		switch {
		case e.Key == cache.EpochKey() && !e.Delete:
			current, _ = strconv.ParseUint(strings.TrimSpace(string(e.Value)), 10, 64)
		case e.Delete && strings.HasPrefix(e.Key, cache.Prefix()):
			dels[e.Key] = del{rev: e.Rev, epoch: string(e.Prev), current: current, hasEpoch: e.Prev != nil}
		}
	}
	var bad []string
	gone := 0
	for o := range m.Objects() {
		if _, err := os.Lstat(o.Path); err == nil {
			continue
		}
		gone++
		key := cache.Key(o.Scope, o.ID())
		d, ok := dels[key]
		epoch, perr := strconv.ParseUint(strings.TrimSpace(d.epoch), 10, 64)
		switch {
		case o.Reachable:
			bad = append(bad, o.Path+": reachable, deleted")
		case !ok:
			bad = append(bad, o.Path+": deleted, but its epoch key never was (it had no epoch)")
		case !d.hasEpoch || perr != nil:
			bad = append(bad, fmt.Sprintf("%s: deleted at %d with epoch %q", o.Path, d.rev, d.epoch))
		case epoch >= d.current:
			bad = append(bad, fmt.Sprintf("%s: deleted at %d with epoch %d, not older than the current %d", o.Path, d.rev, epoch, d.current))
		}
	}
	for _, b := range m.Bad {
		if _, err := os.Lstat(b.Path); err != nil {
			bad = append(bad, b.Path+": bad entry deleted")
		}
	}
	if len(bad) > 0 {
		c.Detail = fmt.Sprintf("%d wrong deletions, e.g. %s", len(bad), strings.Join(bad[:min(3, len(bad))], "; "))
		return c
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%d objects collected, each unreachable with an old epoch; %d bad entries kept", gone, len(m.Bad))
	return c
}
