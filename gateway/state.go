package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
)

// The move keeps what it needs to resume and revert in one key outside the
// Gateway's prefix (Gateway 0.14 reads its prefix whole: anything there is
// a document to it). etcd already keeps the rest: a key's create revision
// says which write created it, so the state holds only the v3 revision
// ranges the move's runs wrote in. A key under the prefix created inside
// one of them was created by the move.

// DefaultStateDir holds the move's state key of each Gateway prefix:
// DefaultStateDir + prefix, /rok/upgrade/gw-move/rok/gw by default.
const DefaultStateDir = "/rok/upgrade/gw-move"

// StateKey is the default state key of the move of the Gateway store under
// prefix.
func StateKey(prefix string) string { return DefaultStateDir + cleanPrefix(prefix) }

// moveState is the state key's value.
type moveState struct {
	Prefix string `json:"prefix"`
	// Runs are the v3 revisions each run of the move wrote in: it created
	// keys with From < create revision <= To. The last run is open (To 0)
	// while it runs or once it was killed; an open run starts at the
	// state key's mod revision (the write that opened it), since nothing
	// else writes the key while a run is open.
	Runs []revRange `json:"runs"`
	// Reverting is set once a revert began; a revert run again goes on.
	Reverting bool `json:"reverting,omitempty"`
}

type revRange struct {
	From int64 `json:"from"` // exclusive
	To   int64 `json:"to"`   // inclusive; 0: open
}

// has reports whether a key created at rev was created by one of the
// move's closed runs (an open run's bounds are known only once closed:
// closeRun first).
func (s *moveState) has(rev int64) bool {
	for _, r := range s.Runs {
		if r.To != 0 && rev > r.From && rev <= r.To {
			return true
		}
	}
	return false
}

// last is the end of the last run (0 while one is open).
func (s *moveState) last() int64 {
	if len(s.Runs) == 0 {
		return 0
	}
	return s.Runs[len(s.Runs)-1].To
}

// open reports whether a run was opened and never closed.
func (s *moveState) open() bool { return len(s.Runs) > 0 && s.last() == 0 }

// closeRun closes an open run at rev: the run began at the state key's
// mod revision (modRev) and wrote nothing after rev.
func (s *moveState) closeRun(modRev, rev int64) {
	if s.open() {
		r := &s.Runs[len(s.Runs)-1]
		r.From, r.To = modRev, rev
	}
}

// stateStore reads and writes one move's state key, every write guarded.
type stateStore struct {
	kv     clientv3.KV
	key    string
	prefix string
	guard  fencing.Guard
}

func newStateStore(kv clientv3.KV, opts MoveOptions) *stateStore {
	prefix := cleanPrefix(opts.Prefix)
	key := opts.StateKey
	if key == "" {
		key = StateKey(prefix)
	}
	return &stateStore{kv: kv, key: key, prefix: prefix, guard: opts.Guard}
}

// get returns the state (nil when there is none), its mod revision, and
// the store's revision as of the read.
func (s *stateStore) get(ctx context.Context) (*moveState, int64, int64, error) {
	resp, err := s.kv.Get(ctx, s.key)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("gateway: read the move's state %s: %w", s.key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, resp.Header.Revision, nil
	}
	var st moveState
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
		return nil, 0, 0, fmt.Errorf("gateway: the move's state %s is not JSON: %w", s.key, err)
	}
	if st.Prefix != s.prefix {
		return nil, 0, 0, fmt.Errorf("gateway: the move's state %s belongs to prefix %s, not %s", s.key, st.Prefix, s.prefix)
	}
	return &st, resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}

// put writes st if the key is still at modRev (0: absent), and returns the
// revision of the write; ok is false when someone else wrote it first.
func (s *stateStore) put(ctx context.Context, st *moveState, modRev int64) (int64, bool, error) {
	st.Prefix = s.prefix
	b, err := json.Marshal(st)
	if err != nil {
		return 0, false, err
	}
	resp, err := s.kv.Txn(ctx).
		If(append(s.guard.Cmps(), clientv3.Compare(clientv3.ModRevision(s.key), "=", modRev))...).
		Then(clientv3.OpPut(s.key, string(b))).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("gateway: write the move's state %s: %w", s.key, err)
	}
	if !resp.Succeeded {
		return 0, false, s.guard.Check(ctx, s.kv)
	}
	return resp.Header.Revision, true, nil
}

// update applies fn to the state (nil when absent) and writes it, again
// from a fresh read if another writer came first. fn gets the state's mod
// revision and the revision it was read at. update returns the state and
// the revision of its write (0 when fn wrote nothing).
func (s *stateStore) update(ctx context.Context, fn func(st *moveState, modRev, rev int64) *moveState) (*moveState, int64, error) {
	for attempt := 0; attempt < 5; attempt++ {
		st, modRev, rev, err := s.get(ctx)
		if err != nil {
			return nil, 0, err
		}
		next := fn(st, modRev, rev)
		if next == nil {
			return st, 0, nil
		}
		if wrote, ok, err := s.put(ctx, next, modRev); err != nil || ok {
			return next, wrote, err
		}
	}
	return nil, 0, fmt.Errorf("gateway: the move's state %s keeps changing; is another move or revert running?", s.key)
}

// openRun records that a run of the move is about to write: every key it
// creates will have a create revision past this write's, which openRun
// returns.
func (s *stateStore) openRun(ctx context.Context) (int64, error) {
	_, rev, err := s.update(ctx, func(st *moveState, modRev, rev int64) *moveState {
		if st == nil {
			st = &moveState{}
		}
		st.closeRun(modRev, rev) // a run killed before it closed
		st.Reverting = false
		st.Runs = append(st.Runs, revRange{})
		return st
	})
	return rev, err
}

// closeRun records that the open run wrote nothing after now.
func (s *stateStore) closeRun(ctx context.Context) error {
	_, _, err := s.update(ctx, func(st *moveState, modRev, rev int64) *moveState {
		if st == nil || !st.open() {
			return nil
		}
		st.closeRun(modRev, rev)
		return st
	})
	return err
}

// remove deletes the state key if it is still at modRev.
func (s *stateStore) remove(ctx context.Context, modRev int64) error {
	resp, err := s.kv.Txn(ctx).
		If(append(s.guard.Cmps(), clientv3.Compare(clientv3.ModRevision(s.key), "=", modRev))...).
		Then(clientv3.OpDelete(s.key)).Commit()
	if err != nil {
		return fmt.Errorf("gateway: delete the move's state %s: %w", s.key, err)
	}
	if !resp.Succeeded {
		if err := s.guard.Check(ctx, s.kv); err != nil {
			return err
		}
		return fmt.Errorf("gateway: the move's state %s changed during the revert; is a move running? re-run the revert", s.key)
	}
	return nil
}

// legacyMarkers is where rokup before issue 13 kept the move's bookkeeping,
// inside the Gateway's prefix: one key per transaction,
// <prefix>/_rokup/moved//<run>-<seq>, whose mod revision is the revision
// that created the keys it lists.
func legacyMarkers(prefix string) string { return prefix + "/_rokup/moved/" }

// adoptMarkers converts a store's legacy markers, if any, into the state
// key, once: each run's markers become the revision range from its first
// to its last, and the markers are deleted. Within a run only the move
// wrote under the prefix (the Gateway was stopped), so the range holds
// the keys the markers listed. The state is written before any marker is
// deleted; an interrupted adoption adopts the markers left.
func (s *stateStore) adoptMarkers(ctx context.Context) (int64, error) {
	mp := legacyMarkers(s.prefix)
	runs := map[string]*revRange{}
	var keys []string
	var mods []int64
	for p := conn.NewPager(s.kv, mp, clientv3.GetPrefixRangeEnd(mp), 1024, clientv3.WithKeysOnly()); p.More(); {
		kvs, err := p.Next(ctx)
		if err != nil {
			return 0, fmt.Errorf("gateway: read the legacy markers %s: %w", mp, err)
		}
		for _, kv := range kvs {
			k := string(kv.Key)
			run, _, _ := strings.Cut(strings.TrimLeft(strings.TrimPrefix(k, mp), "/"), "-")
			r := runs[run]
			if r == nil {
				r = &revRange{From: kv.ModRevision - 1, To: kv.ModRevision}
				runs[run] = r
			}
			r.From, r.To = min(r.From, kv.ModRevision-1), max(r.To, kv.ModRevision)
			keys, mods = append(keys, k), append(mods, kv.ModRevision)
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	var adopted []revRange
	for _, r := range runs {
		adopted = append(adopted, *r)
	}
	sort.Slice(adopted, func(i, j int) bool { return adopted[i].From < adopted[j].From })
	if _, _, err := s.update(ctx, func(st *moveState, modRev, rev int64) *moveState {
		if st == nil {
			st = &moveState{}
		}
		st.closeRun(modRev, rev) // adoption starts a move or a revert: no run is live
		var add []revRange
		for _, r := range adopted {
			if !st.covers(r) {
				add = append(add, r)
			}
		}
		st.Runs = append(add, st.Runs...)
		return st
	}); err != nil {
		return 0, err
	}
	for i := 0; i < len(keys); i += 64 {
		j := min(i+64, len(keys))
		cmps := s.guard.Cmps()
		var ops []clientv3.Op
		for n := i; n < j; n++ {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[n]), "=", mods[n]))
			ops = append(ops, clientv3.OpDelete(keys[n]))
		}
		resp, err := s.kv.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return 0, fmt.Errorf("gateway: delete the legacy markers %s: %w", keys[i], err)
		}
		if !resp.Succeeded {
			if err := s.guard.Check(ctx, s.kv); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("gateway: legacy markers near %s changed while being adopted; is an older rokup still moving? re-run", keys[i])
		}
	}
	return int64(len(keys)), nil
}

// covers reports whether a closed run of s holds all of r.
func (s *moveState) covers(r revRange) bool {
	for _, x := range s.Runs {
		if x.To != 0 && x.From <= r.From && r.To <= x.To {
			return true
		}
	}
	return false
}
