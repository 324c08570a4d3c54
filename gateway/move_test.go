package gateway

import (
	"context"
	"errors"
	"math/rand"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// expectedChecksum is the checksum of the seeded documents, computed from
// what the test wrote, not from what the move read.
func expectedChecksum(s *store) string {
	var d digest
	for k, v := range s.docs {
		d.add(k, v)
	}
	return d.String()
}

func appliedKeys(t testing.TB, ex *Executor) []string {
	t.Helper()
	applied, err := ex.Applied(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k, src := range applied {
		if src != Partial {
			out = append(out, k.String())
		}
	}
	sort.Strings(out)
	return out
}

func TestMigrateMovesEveryDocumentByteForByte(t *testing.T) {
	e := newEnv(t, small)
	ctx := ctxT(t)
	start := time.Now()
	results, err := e.migrate(ctx, t, "", "", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 0001_initial is in the v2-era ledger, so only the move, the
	// buckets and the state conversion run.
	if len(results) != 3 || results[0].Key != V3Store || results[1].Key != Published || results[2].Key != MoveState {
		t.Fatalf("ran %v, want 0002, 0003, 0004", results)
	}
	e.assertMoved(t, true)

	rep := results[0].Result.Report.(MoveReport)
	if rep.Docs != int64(len(e.store.docs)) || rep.Created != rep.Docs || rep.EmptyDirs != 2 || rep.TTLDocs != int64(len(e.store.ttl)) {
		t.Errorf("report: docs %d created %d empty dirs %d ttl %d; want %d, %d, 2, %d", rep.Docs, rep.Created, rep.EmptyDirs, rep.TTLDocs, len(e.store.docs), len(e.store.docs), len(e.store.ttl))
	}
	if rep.Checksum != expectedChecksum(e.store) {
		t.Errorf("checksum %s, want %s", rep.Checksum, expectedChecksum(e.store))
	}

	// TTL documents carry leases with what remained of their v2 TTL (up to
	// 1% more, the shared lease window), and close expiries share one.
	leases := map[clientv3.LeaseID]bool{}
	for k, ttl := range e.store.ttl {
		resp, err := e.cli.Get(ctx, k)
		if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
			t.Fatalf("%s: want a leased key, got %v %v", k, resp, err)
		}
		id := clientv3.LeaseID(resp.Kvs[0].Lease)
		leases[id] = true
		tl, err := e.cli.TimeToLive(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		lo := ttl - time.Since(start) - 2*time.Second
		hi := ttl + ttl/100 + 2*time.Second
		if got := time.Duration(tl.TTL) * time.Second; got < lo || got > hi {
			t.Errorf("%s: lease has %s left, want within [%s, %s]", k, got, lo, hi)
		}
	}
	if len(leases) >= len(e.store.ttl) || int64(len(leases)) != rep.Leases {
		t.Errorf("%d TTL documents on %d leases (report %d): want shared leases", len(e.store.ttl), len(leases), rep.Leases)
	}
	for _, hidden := range []string{"/epochs/maps-ca/abc"} {
		if resp, _ := e.cli.Get(ctx, hidden); len(resp.Kvs) != 0 {
			t.Errorf("%s is outside the prefix and must not move", hidden)
		}
	}

	// Published buckets: marked, unknown fields kept; others untouched.
	br := results[1].Result.Report.(BucketsReport)
	if strings.Join(br.Published, ",") != strings.Join(e.store.published, ",") || len(br.Invalid) != 1 || br.Invalid[0] != e.store.invalid {
		t.Errorf("buckets report %+v", br)
	}
	alpha := e.bucket(t, "alpha")
	if alpha["syncing"] != false || alpha["sync_reason"] != SyncReason || alpha["registry"] != "r1" || alpha["x_unknown"] == nil {
		t.Errorf("alpha after marking: %v", alpha)
	}
	for _, name := range []string{"beta", "broken"} {
		resp, _ := e.cli.Get(ctx, e.store.prefix+"/buckets/"+name)
		if string(resp.Kvs[0].Value) != e.store.docs[e.store.prefix+"/buckets/"+name] {
			t.Errorf("bucket %s was changed: %s", name, resp.Kvs[0].Value)
		}
	}

	ex := e.executor(t, MoveOptions{})
	if got := strings.Join(appliedKeys(t, ex), " "); got != "gw.0001_initial gw.0002_v3_store gw.0003_published_buckets gw.0004_move_state" {
		t.Errorf("ledger: %s", got)
	}
	rec, ok, err := ex.Recorder.Get(ctx, V3Store)
	if err != nil || !ok || rec.Checksum != rep.Checksum || rec.Counts["docs"] != rep.Docs || rec.ToolVersion == "" || rec.Applied.IsZero() {
		t.Errorf("ledger entry of the move: %+v %v %v", rec, ok, err)
	}

	// A second migrate is a no-op: nothing planned, nothing written.
	before, _ := e.cli.Get(ctx, "/", clientv3.WithCountOnly())
	again, err := e.migrate(ctx, t, "", "", MoveOptions{})
	after, _ := e.cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil || len(again) != 0 || after.Header.Revision != before.Header.Revision {
		t.Errorf("second migrate: %v %v, revision %d -> %d", again, err, before.Header.Revision, after.Header.Revision)
	}

	// v2 is untouched.
	for k, v := range e.store.docs {
		resp, err := e.kapi.Get(ctx, k, nil)
		if err != nil || resp.Node.Value != v {
			t.Fatalf("v2 %s changed: %v", k, err)
		}
	}
}

func TestMigrateRefusesWhileAGatewayIsAlive(t *testing.T) {
	e := newEnv(t, seedSize{docs: 50})
	ctx := ctxT(t)
	if _, err := e.kapi.Set(ctx, e.store.prefix+"/_alive/gw-node-1", "1", &clientv2.SetOptions{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	_, err := e.migrate(ctx, t, "", "", MoveOptions{})
	if !errors.Is(err, ErrGatewayAlive) || !strings.Contains(err.Error(), "/rok/gw/_alive/gw-node-1") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("want ErrGatewayAlive naming the instance and --force, got %v", err)
	}
	if got := e.v3Docs(t); len(got) != 0 {
		t.Errorf("refused move wrote %d keys", len(got))
	}
	ex := e.executor(t, MoveOptions{})
	if got := strings.Join(appliedKeys(t, ex), " "); got != "gw.0001_initial" {
		t.Errorf("ledger after refusal: %s", got)
	}
	if _, err := e.migrate(ctx, t, "", "", MoveOptions{Force: true}); err != nil {
		t.Fatalf("--force: %v", err)
	}
	e.assertMoved(t, true)
	if resp, _ := e.cli.Get(ctx, e.store.prefix+"/_alive/", clientv3.WithPrefix()); len(resp.Kvs) != 0 {
		t.Error("liveness keys must not move")
	}
}

func TestInterruptedMoveConverges(t *testing.T) {
	e := newEnv(t, small)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 4; i++ {
		stopAt := int64(rng.Intn(len(e.store.docs)))
		ctx, cancel := context.WithCancel(context.Background())
		_, err := Move(ctx, e.cli, e.kapi, MoveOptions{InFlight: 4, Progress: func(p Progress) {
			if p.Phase == "copy" && p.Done >= stopAt {
				cancel()
			}
		}})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d, cancelled at %d docs: %v", i, stopAt, err)
		}
		t.Logf("run %d cancelled at %d docs", i, stopAt)
	}
	ex := e.executor(t, MoveOptions{})
	if got := strings.Join(appliedKeys(t, ex), " "); got != "gw.0001_initial" {
		t.Fatalf("an interrupted move was recorded: %s", got)
	}
	results, err := e.migrate(ctxT(t), t, "gw", "0002_v3_store", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep := results[0].Result.Report.(MoveReport)
	if rep.Checksum != expectedChecksum(e.store) || rep.Created+rep.Identical != rep.Docs || rep.Conflicts != 0 {
		t.Errorf("after interruptions: %+v", rep)
	}
	e.assertMoved(t, false)

	// Markers of every run, the interrupted ones included, let revert
	// remove all of it.
	if _, err := e.migrate(ctxT(t), t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.v3Docs(t); len(got) != 0 {
		t.Errorf("after revert v3 still holds %d documents", len(got))
	}
}

// TestV2WriteDuringMoveFailsVerification races v2 writes with the copy,
// deterministically: a write lands once a given document is in v3 (a
// hook on the v3 transactions), or just before the copy reads a given
// document (a hook on the v2 reads). A write to a document already copied
// fails the move and is named; so does one the copy reads (written after
// the move began); a delete of a document the copy has not read yet
// leaves v2 and v3 equal: a consistent copy, which passes.
func TestV2WriteDuringMoveFailsVerification(t *testing.T) {
	const (
		copied = DefaultPrefix + "/objects/d03/s1/doc-00071" // the hook's document
		unread = DefaultPrefix + "/objects/d16/s4/doc-00169"
	)
	cases := []struct {
		name  string
		after bool // after copied is in v3; else before unread is read
		write func(ctx context.Context, e *testEnv) error
		want  string // in the error; "" for success
	}{
		{"change a copied document", true, func(ctx context.Context, e *testEnv) error {
			_, err := e.kapi.Set(ctx, copied, "changed", nil)
			return err
		}, copied + " was written in v2 at index"},
		{"delete a copied document", true, func(ctx context.Context, e *testEnv) error {
			_, err := e.kapi.Delete(ctx, copied, nil)
			return err
		}, copied + " was deleted from v2 after the move copied it"},
		{"add to a directory already read", true, func(ctx context.Context, e *testEnv) error {
			_, err := e.kapi.Set(ctx, path.Dir(copied)+"/new", "new", nil)
			return err
		}, path.Dir(copied) + "/new was created in v2 at index"},
		{"change a document before it is read", false, func(ctx context.Context, e *testEnv) error {
			_, err := e.kapi.Set(ctx, unread, "changed", nil)
			return err
		}, unread + " was written at v2 index"},
		{"delete a document before it is read", false, func(ctx context.Context, e *testEnv) error {
			_, err := e.kapi.Delete(ctx, unread, nil)
			return err
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, seedSize{docs: 1500, ttls: 10, ledge: true})
			ctx := ctxT(t)
			if _, ok := e.store.docs[copied]; !ok {
				t.Fatalf("the seed has no %s", copied)
			}
			if _, ok := e.store.docs[unread]; !ok {
				t.Fatalf("the seed has no %s", unread)
			}
			var fired atomic.Bool
			var werr error
			write := func() {
				if fired.CompareAndSwap(false, true) {
					werr = tc.write(ctx, e)
				}
			}
			cli, kapi := e.cli, e.kapi
			if tc.after {
				c := embed.NewTestClient(t, e.eps)
				c.KV = &hookKV{KV: c.KV, key: copied, fn: write}
				cli = c
			} else {
				kapi = &hookKeys{KeysAPI: e.kapi, tree: e.kapi.(subtreeReader), key: unread, fn: write}
			}
			ex, err := NewExecutor(GW(), Env{V3: cli, V2: kapi, Prefix: e.store.prefix})
			if err != nil {
				t.Fatal(err)
			}
			applied, _ := ex.Applied(ctx)
			plan, _ := ex.Plan("gw", "0002_v3_store", applied)
			results, err := ex.Run(ctx, plan, RunOptions{})
			if !fired.Load() || werr != nil {
				t.Fatalf("the v2 write did not happen during the move: %v", werr)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("a delete before the copy read the document: %v", err)
				}
				delete(e.store.docs, unread)
				rep := results[0].Result.Report.(MoveReport)
				if rep.FastVerify || rep.VerifiedIndex <= rep.V2Index || rep.Checksum != expectedChecksum(e.store) {
					t.Errorf("fast verify %v, verified at %d (began at %d), checksum %s (want %s)", rep.FastVerify, rep.VerifiedIndex, rep.V2Index, rep.Checksum, expectedChecksum(e.store))
				}
				e.assertMoved(t, false)
				return
			}
			t.Log(err)
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "v2 changed during the move") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a verification failure naming %q, got %v", tc.want, err)
			}
			if got := strings.Join(appliedKeys(t, ex), " "); got != "gw.0001_initial" {
				t.Errorf("ledger after a failed verification: %s", got)
			}
			if rep, ok := results[len(results)-1].Result.Report.(MoveReport); !ok || len(rep.V2Changes) != 1 || !strings.Contains(rep.V2Changes[0], tc.want) {
				t.Errorf("the report's v2 changes: %q, want one naming %q", rep.V2Changes, tc.want)
			}
		})
	}
}

// hookKV calls fn once a transaction that puts key (any key under the
// prefix when empty) has committed: the document is in v3 then, and the
// move goes on. With beforeDelete, it calls fn instead just before
// sending a transaction that deletes key.
type hookKV struct {
	clientv3.KV
	key          string
	fn           func()
	beforeDelete bool
}

func (k *hookKV) Txn(ctx context.Context) clientv3.Txn {
	return &hookTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type hookTxn struct {
	clientv3.Txn
	kv      *hookKV
	matches bool
}

func (t *hookTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	for _, op := range ops {
		k := string(op.KeyBytes())
		if t.kv.beforeDelete {
			t.matches = t.matches || (op.IsDelete() && k == t.kv.key)
		} else {
			t.matches = t.matches || (op.IsPut() && (k == t.kv.key || (t.kv.key == "" && strings.HasPrefix(k, DefaultPrefix+"/"))))
		}
	}
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *hookTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.Txn = t.Txn.If(cs...); return t }

func (t *hookTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.matches && t.kv.beforeDelete {
		t.kv.fn()
	}
	resp, err := t.Txn.Commit()
	if err == nil && resp.Succeeded && t.matches && !t.kv.beforeDelete {
		t.kv.fn()
	}
	return resp, err
}

// hookKeys calls fn just before the first v2 read that would return key
// (its directory, or a subtree holding it).
type hookKeys struct {
	clientv2.KeysAPI
	tree subtreeReader
	key  string
	fn   func()
}

func (k *hookKeys) covers(dir string, recursive bool) bool {
	return path.Dir(k.key) == dir || (recursive && strings.HasPrefix(k.key, dir+"/"))
}

func (k *hookKeys) Read(ctx context.Context, key string, recursive bool, max int64) (*clientv2.Node, uint64, error) {
	if k.covers(key, recursive) {
		k.fn()
	}
	return k.tree.Read(ctx, key, recursive, max)
}

func (k *hookKeys) Get(ctx context.Context, key string, opts *clientv2.GetOptions) (*clientv2.Response, error) {
	if (opts == nil || !opts.Quorum) && k.covers(key, opts != nil && opts.Recursive) {
		k.fn()
	}
	return k.KeysAPI.Get(ctx, key, opts)
}

func TestLeaseWindowNeverShortensAndBoundsTheExtension(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, remaining := range []time.Duration{time.Second, 30 * time.Second, 10 * time.Minute, 2 * time.Hour, 48 * time.Hour} {
		for off := time.Duration(0); off < 200*time.Second; off += 7 * time.Second {
			exp := now.Add(remaining + off)
			end := time.Unix(leaseWindowEnd(exp, now), 0)
			if end.Before(exp) {
				t.Fatalf("remaining %s: window ends %s before the expiry %s", remaining, end, exp)
			}
			if limit := max(time.Second, min(exp.Sub(now)/100, time.Minute)); end.Sub(exp) >= limit {
				t.Fatalf("remaining %s: extended by %s, limit %s", remaining, end.Sub(exp), limit)
			}
		}
	}
}

// tamperKV changes one key in v3 just before the move first reads v3
// back (a range read, or a transaction of gets only): what a stray v3
// writer or a lost write would leave behind the copy.
type tamperKV struct {
	clientv3.KV
	once sync.Once
	key  string
}

func (k *tamperKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if !strings.HasPrefix(key, DefaultPrefix+"/") || strings.HasPrefix(key, legacyMarkers(DefaultPrefix)) {
		// the move's state key, or its look for an older rokup's markers
		return k.KV.Get(ctx, key, opts...)
	}
	var err error
	k.once.Do(func() {
		var resp *clientv3.GetResponse
		if resp, err = k.KV.Get(ctx, DefaultPrefix+"/", clientv3.WithPrefix(), clientv3.WithLimit(100)); err != nil {
			return
		}
		for _, kv := range resp.Kvs { // a document, not the move's bookkeeping
			if !strings.Contains(string(kv.Key), "/_") {
				k.key = string(kv.Key)
			}
		}
		_, err = k.KV.Put(ctx, k.key, "tampered")
	})
	if err != nil {
		return nil, err
	}
	return k.KV.Get(ctx, key, opts...)
}

func (k *tamperKV) Txn(ctx context.Context) clientv3.Txn {
	return &tamperTxn{Txn: k.KV.Txn(ctx), kv: k, ctx: ctx}
}

type tamperTxn struct {
	clientv3.Txn
	kv   *tamperKV
	ctx  context.Context
	cmps int
	ops  []clientv3.Op
}

func (t *tamperTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.cmps += len(cs)
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *tamperTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *tamperTxn) Commit() (*clientv3.TxnResponse, error) {
	reads := t.cmps == 0 && len(t.ops) > 0
	for _, op := range t.ops {
		reads = reads && op.IsGet()
	}
	var err error
	if reads {
		t.kv.once.Do(func() {
			t.kv.key = string(t.ops[len(t.ops)-1].KeyBytes())
			_, err = t.kv.KV.Put(t.ctx, t.kv.key, "tampered")
		})
	}
	if err != nil {
		return nil, err
	}
	return t.Txn.Commit()
}

func TestV3KeyChangedAfterTheCopyFailsVerification(t *testing.T) {
	e := newEnv(t, seedSize{docs: 1500, ttls: 10})
	cli := embed.NewTestClient(t, e.eps)
	tamper := &tamperKV{KV: cli.KV}
	cli.KV = tamper
	_, err := Move(ctxT(t), cli, e.kapi, MoveOptions{})
	if tamper.key == "" {
		t.Fatal("the move read nothing back from v3")
	}
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "1 v3 keys do not hold their v2 bytes") || !strings.Contains(err.Error(), tamper.key) {
		t.Fatalf("want a verification failure naming %s, got %v", tamper.key, err)
	}
}

// The move is one pass: the copy writes while v2 is still being read. Past
// its first reads, every v2 read waits for a document to be in v3; a move
// that read all of v2 before its first write would wait for ever.
func TestMoveWritesWhileItReads(t *testing.T) {
	e := newEnv(t, seedSize{docs: 1500, ttls: 10, ledge: true})
	ctx, cancel := context.WithTimeout(ctxT(t), 30*time.Second) // a deadlock guard, not a timing
	defer cancel()
	written := make(chan struct{})
	var once sync.Once
	cli := embed.NewTestClient(t, e.eps)
	cli.KV = &hookKV{KV: cli.KV, key: "", fn: func() { once.Do(func() { close(written) }) }}
	gate := &gateKeys{KeysAPI: e.kapi, tree: e.kapi.(subtreeReader), after: 10, open: written}
	rep, err := Move(ctx, cli, gate, MoveOptions{MaxTxnOps: 4})
	if err != nil {
		t.Fatalf("the move waited for a write before reading v2 whole (%d reads): %v", gate.reads.Load(), err)
	}
	if gate.reads.Load() <= gate.after || rep.Created != int64(len(e.store.docs)) {
		t.Fatalf("%d v2 reads, %d documents created of %d", gate.reads.Load(), rep.Created, len(e.store.docs))
	}
	e.assertMoved(t, false)
}

// gateKeys lets the first after v2 reads through, then holds each read
// until open is closed.
type gateKeys struct {
	clientv2.KeysAPI
	tree  subtreeReader
	after int64
	reads atomic.Int64
	open  chan struct{}
}

func (k *gateKeys) Read(ctx context.Context, key string, recursive bool, max int64) (*clientv2.Node, uint64, error) {
	if k.reads.Add(1) > k.after {
		select {
		case <-k.open:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return k.tree.Read(ctx, key, recursive, max)
}
