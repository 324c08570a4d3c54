package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// snapshot is every v3 key with its value and create revision.
func snapshot(t testing.TB, cli *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := cli.Get(context.Background(), "\x00", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out
}

func TestRevertRemovesExactlyTheMovedKeys(t *testing.T) {
	e := newEnv(t, small)
	ctx := ctxT(t)
	same := e.store.prefix + "/objects/d00/s0/doc-00000"
	for k, v := range map[string]string{
		"/other/app/key": "not the Gateway's",
		same:             e.store.docs[same], // already moved by hand, same bytes
	} {
		if _, err := e.cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, e.cli)
	if _, err := e.migrate(ctx, t, "", "", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	// Written in v3 by someone else once the move was done.
	beside := map[string]string{
		e.store.prefix + "/v3only/doc":   "written in v3 by someone else",
		e.store.prefix + "/zz/after/all": "sorts after the documents",
	}
	for k, v := range beside {
		if _, err := e.cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		before[k] = v
	}
	results, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 || !results[0].Backward || results[0].Key != MoveState || results[1].Key != Published || results[2].Key != V3Store {
		t.Fatalf("revert ran %v, want 0004, 0003 then 0002 backwards", results)
	}
	after := snapshot(t, e.cli)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("revert changed or removed %s, which the move did not create", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("revert left %s behind", k)
		}
	}
	if got := strings.Join(appliedKeys(t, e.executor(t, MoveOptions{})), " "); got != "gw.0001_initial" {
		t.Errorf("ledger after revert: %s", got)
	}
	// The move applied again finds the keys written beside it, which v2
	// does not hold: it fails naming them; with Overwrite it deletes them.
	if _, err := e.migrate(ctx, t, "", "", MoveOptions{}); !errors.Is(err, ErrExtra) || !strings.Contains(err.Error(), "/v3only/doc") {
		t.Fatalf("re-applied move with keys v2 does not hold: %v, want ErrExtra naming them", err)
	}
	results, err = e.migrate(ctx, t, "", "", MoveOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	// (The failed run copied every document: this one finds them in place.)
	if rep := results[0].Result.Report.(MoveReport); rep.Checksum != expectedChecksum(e.store) || rep.Identical != rep.Docs || rep.V3OnlyDeleted != 2 {
		t.Errorf("re-applied move: checksum %s (want %s), %d of %d identical, %d v3-only deleted (want 2)", rep.Checksum, expectedChecksum(e.store), rep.Identical, rep.Docs, rep.V3OnlyDeleted)
	}
	e.assertMoved(t, true) // 0003 edits the buckets
}

func TestRevertInterruptedResumes(t *testing.T) {
	e := newEnv(t, seedSize{docs: 2000, ledge: true})
	before := snapshot(t, e.cli)
	if _, err := e.migrate(ctxT(t), t, "gw", "0002_v3_store", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := RevertMove(ctx, e.cli, e.kapi, MoveOptions{Progress: func(p Progress) {
		if p.Done > 500 {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want an interrupted revert, got %v", err)
	}
	if _, err := e.migrate(ctxT(t), t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, e.cli)
	if len(after) != len(before) {
		t.Errorf("after a resumed revert v3 holds %d keys, before the move %d", len(after), len(before))
	}
}

func TestConflictingV3KeyIsReportedNotOverwritten(t *testing.T) {
	e := newEnv(t, seedSize{docs: 500, ledge: true})
	ctx := ctxT(t)
	k := e.store.prefix + "/objects/d03/s3/doc-00003"
	if _, err := e.cli.Put(ctx, k, "other bytes"); err != nil {
		t.Fatal(err)
	}
	results, err := e.migrate(ctx, t, "", "", MoveOptions{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), k) || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("want ErrConflict naming %s and --overwrite, got %v", k, err)
	}
	if rep := results[0].Result.Report.(MoveReport); rep.Conflicts != 1 || rep.ConflictKeys[0] != k {
		t.Errorf("report: %d conflicts %v", rep.Conflicts, rep.ConflictKeys)
	}
	if resp, _ := e.cli.Get(ctx, k); string(resp.Kvs[0].Value) != "other bytes" {
		t.Errorf("conflicting key was overwritten: %q", resp.Kvs[0].Value)
	}
	if got := strings.Join(appliedKeys(t, e.executor(t, MoveOptions{})), " "); got != "gw.0001_initial" {
		t.Errorf("ledger after a conflict: %s", got)
	}

	results, err = e.migrate(ctx, t, "", "", MoveOptions{Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep := results[0].Result.Report.(MoveReport); rep.Overwritten != 1 {
		t.Errorf("overwritten %d, want 1", rep.Overwritten)
	}
	e.assertMoved(t, true)
	// Revert deletes what the move created; the overwritten key existed
	// before, so it stays (with the v2 bytes).
	if _, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.cli.Get(ctx, k); len(resp.Kvs) != 1 {
		t.Errorf("revert deleted %s, which the move did not create", k)
	}
}

// An oversize document in the middle of the store fails the move when
// the copy reaches it, naming it and its size, after the copy wrote
// documents read before it; nothing is recorded and v2 is untouched. A
// revert undoes the partial copy; a re-run once the document is fixed
// converges.
func TestOversizeDocumentInTheMiddleFailsAndConverges(t *testing.T) {
	e := newEnv(t, seedSize{docs: 1500, ledge: true})
	ctx := ctxT(t)
	big := e.store.prefix + "/objects/d08/s2/oversize"
	if _, err := e.kapi.Set(ctx, big, strings.Repeat("o", 600<<10), nil); err != nil {
		t.Fatal(err)
	}
	e.store.docs[big] = strings.Repeat("o", 600<<10)
	opts := MoveOptions{MaxRequestBytes: 512 << 10, MaxTxnOps: 8}
	fail := func(what string) {
		t.Helper()
		_, err := e.migrate(ctx, t, "", "", opts)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), big+" holds 614400 bytes") || !strings.Contains(err.Error(), "--max-request-bytes") {
			t.Fatalf("%s: want ErrTooLarge naming %s, its size and the flag, got %v", what, big, err)
		}
		if got := len(e.v3Docs(t)); got == 0 || got >= len(e.store.docs) {
			t.Fatalf("%s: v3 holds %d of %d documents; want the ones copied before the oversize one, and not the rest", what, got, len(e.store.docs))
		}
		if got := strings.Join(appliedKeys(t, e.executor(t, MoveOptions{})), " "); got != "gw.0001_initial" {
			t.Errorf("%s: ledger: %s", what, got)
		}
		for k, v := range e.store.docs {
			if resp, err := e.kapi.Get(ctx, k, nil); err != nil || resp.Node.Value != v {
				t.Fatalf("%s: v2 %s changed: %v", what, k, err)
			}
		}
		e.assertPrefixClean(t)
	}
	fail("first move")

	// A revert deletes what the failed move copied.
	if _, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.v3Docs(t); len(got) != 0 {
		t.Fatalf("after the revert v3 holds %d documents", len(got))
	}

	// Failed again, then fixed in v2: the re-run converges.
	fail("second move")
	fixed := strings.Repeat("f", 100<<10)
	if _, err := e.kapi.Set(ctx, big, fixed, nil); err != nil {
		t.Fatal(err)
	}
	e.store.docs[big] = fixed
	results, err := e.migrate(ctx, t, "", "", opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep := results[0].Result.Report.(MoveReport); rep.Identical == 0 || rep.Created+rep.Identical != rep.Docs || rep.Checksum != expectedChecksum(e.store) {
		t.Errorf("re-run: created %d, already there %d, docs %d, checksum %s (want %s)", rep.Created, rep.Identical, rep.Docs, rep.Checksum, expectedChecksum(e.store))
	}
	e.assertMoved(t, true)
}

func TestSmallTransactionsStillMoveEverything(t *testing.T) {
	e := newEnv(t, seedSize{docs: 300, big: true, ttls: 8})
	results, err := e.migrate(ctxT(t), t, "", "", MoveOptions{MaxTxnOps: 5, MaxRequestBytes: 1300 << 10, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	e.assertMoved(t, true)
	// 0001_initial is not in v2 here: it ran and was recorded in v3.
	if len(results) != 4 {
		t.Errorf("ran %d steps, want 4", len(results))
	}
	// Five compares and five puts a transaction: five documents.
	if rep := results[1].Result.Report.(MoveReport); rep.Txns < int64(len(e.store.docs))/5 {
		t.Errorf("%d transactions for %d documents at 5 per transaction", rep.Txns, len(e.store.docs))
	}
}

// Gateway 0.14 runs once the move is recorded: what it changes or creates
// in v3 is its own, and a revert keeps it and says so; everything the move
// created and nobody changed goes, and so does the move's state.
func TestRevertKeepsWhatGateway014WroteAfterTheMove(t *testing.T) {
	e := newEnv(t, seedSize{docs: 800, ttls: 6, ledge: true})
	ctx := ctxT(t)
	before := snapshot(t, e.cli)
	if _, err := e.migrate(ctx, t, "", "", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := e.store.prefix + "/objects/d01/s1/doc-00001"
	created := e.store.prefix + "/objects/d01/new-in-0.14"
	deleted := e.store.prefix + "/objects/d02/s2/doc-00002"
	same := e.store.prefix + "/objects/d03/s3/doc-00003" // rewritten with its own bytes
	for k, v := range map[string]string{changed: "changed by Gateway 0.14", created: "created by Gateway 0.14", same: e.store.docs[same]} {
		if _, err := e.cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cli.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}

	results, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep := results[2].Result.Report.(RevertReport)
	kept := strings.Join(rep.KeptKeys, " ")
	if rep.Kept != 1 || rep.CreatedAfter != 1 || !strings.Contains(kept, changed) || !strings.Contains(kept, created) {
		t.Errorf("revert report: kept %d, created after %d, listed %v; want %s and %s", rep.Kept, rep.CreatedAfter, rep.KeptKeys, changed, created)
	}
	want := map[string]string{changed: "changed by Gateway 0.14", created: "created by Gateway 0.14"}
	for k, v := range before {
		want[k] = v
	}
	after := snapshot(t, e.cli)
	for k, v := range want {
		if after[k] != v {
			t.Errorf("after the revert %s holds %q, want %q", k, after[k], v)
		}
	}
	for k := range after {
		if _, ok := want[k]; !ok {
			t.Errorf("the revert left %s", k)
		}
	}
	if rep.Deleted != int64(len(e.store.docs))-2 { // deleted by the Gateway, and kept
		t.Errorf("deleted %d, want %d", rep.Deleted, len(e.store.docs)-2)
	}
}

// oldMove moves the store as rokup did before the state key: each
// transaction creates its documents and a marker listing them under
// <prefix>/_rokup/moved//<run>-<seq>; recorded says whether the move was
// recorded in the ledger.
func oldMove(t testing.TB, e *testEnv, n int, recorded bool) {
	t.Helper()
	ctx := ctxT(t)
	keys := make([]string, 0, len(e.store.docs))
	for k := range e.store.docs {
		if _, ttl := e.store.ttl[k]; !ttl {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	keys = keys[:min(n, len(keys))]
	for i, seq := 0, 1; i < len(keys); i, seq = i+40, seq+1 {
		chunk := keys[i:min(i+40, len(keys))]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, k := range chunk {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
			ops = append(ops, clientv3.OpPut(k, e.store.docs[k]))
		}
		b, _ := json.Marshal(map[string]any{"keys": chunk, "leases": make([]int64, len(chunk))})
		ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s/_rokup/moved//18a1b2c3d4e5f601-%08d", e.store.prefix, seq), string(b)))
		if resp, err := e.cli.Txn(ctx).If(cmps...).Then(ops...).Commit(); err != nil || !resp.Succeeded {
			t.Fatalf("old move: %v", err)
		}
	}
	if recorded {
		ex := e.executor(t, MoveOptions{})
		if err := ex.Recorder.Record(ctx, V3Store, Record{Applied: time.Now(), ToolVersion: "rokup 0.0.9"}); err != nil {
			t.Fatal(err)
		}
	}
}

func markers(t testing.TB, e *testEnv) int64 {
	t.Helper()
	resp, err := e.cli.Get(context.Background(), e.store.prefix+"/_rokup/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// A store an older rokup moved, with its markers under the prefix, still
// reverts exactly: the markers are converted into the state key once and
// deleted, and the move's documents go, what came after stays.
func TestRevertOfAStoreMovedWithMarkers(t *testing.T) {
	e := newEnv(t, seedSize{docs: 600, ledge: true})
	ctx := ctxT(t)
	before := snapshot(t, e.cli)
	oldMove(t, e, len(e.store.docs), true)
	if markers(t, e) == 0 {
		t.Fatal("the old move left no markers")
	}
	created := e.store.prefix + "/after/the/move"
	if _, err := e.cli.Put(ctx, created, "Gateway 0.14"); err != nil {
		t.Fatal(err)
	}
	results, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep := results[0].Result.Report.(RevertReport); rep.LegacyMarkers == 0 || rep.CreatedAfter != 1 {
		t.Errorf("revert report %+v: want the markers adopted and %s kept", rep, created)
	}
	before[created] = "Gateway 0.14"
	after := snapshot(t, e.cli)
	if len(after) != len(before) || after[created] != "Gateway 0.14" {
		t.Errorf("after the revert v3 holds %d keys, want the %d of before the move and %s", len(after), len(before)-1, created)
	}
	if n := markers(t, e); n != 0 {
		t.Errorf("%d markers left", n)
	}
}

// An older rokup killed mid-move left markers and no ledger entry: the move
// is partial, and this rokup finishes it with a clean prefix, then reverts
// it whole, the old run's documents included.
func TestMoveResumesAStoreHalfMovedWithMarkers(t *testing.T) {
	e := newEnv(t, seedSize{docs: 600, ttls: 4, ledge: true})
	ctx := ctxT(t)
	before := snapshot(t, e.cli)
	oldMove(t, e, 250, false)
	ex := e.executor(t, MoveOptions{})
	if applied, err := ex.Applied(ctx); err != nil || applied[V3Store] != Partial {
		t.Fatalf("a half-done old move: %v %v, want it partial", applied[V3Store], err)
	}
	results, err := e.migrate(ctx, t, "", "", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep := results[0].Result.Report.(MoveReport); rep.LegacyMarkers == 0 || rep.Identical != 250 {
		t.Errorf("move report: %d markers adopted, %d identical; want some and 250", rep.LegacyMarkers, rep.Identical)
	}
	e.assertMoved(t, true)
	if _, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, e.cli); len(after) != len(before) {
		t.Errorf("after the revert v3 holds %d keys, before the moves %d", len(after), len(before))
	}
}

// A store an older rokup moved and recorded, its markers still under the
// prefix: the next migrate converts them into the move's state (0004) and
// leaves the prefix clean, without moving again; a revert then still
// deletes exactly the old move's documents.
func TestMigrateConvertsTheMarkersOfAnOlderMove(t *testing.T) {
	e := newEnv(t, seedSize{docs: 500, ledge: true})
	ctx := ctxT(t)
	before := snapshot(t, e.cli)
	oldMove(t, e, len(e.store.docs), true)
	ex := e.executor(t, MoveOptions{})
	if err := ex.Recorder.Record(ctx, Published, Record{Applied: time.Now(), ToolVersion: "rokup 0.0.9"}); err != nil {
		t.Fatal(err)
	}
	n := markers(t, e)
	results, err := e.migrate(ctx, t, "", "", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Key != MoveState || results[0].Result.Counts["legacy_markers"] != n {
		t.Fatalf("migrate ran %+v, want 0004 converting %d markers", results, n)
	}
	e.assertMoved(t, false)
	if _, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	assertSameKeys(t, before, snapshot(t, e.cli))
}

// A revert interrupted half-way leaves the move partial: migrate applies
// it again (and what came after it), to the same clean store.
func TestRevertInterruptedThenMigrateAgain(t *testing.T) {
	e := newEnv(t, seedSize{docs: 1500, ttls: 6, ledge: true})
	if _, err := e.migrate(ctxT(t), t, "", "", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ex := e.executor(t, MoveOptions{})
	ex.OnProgress = func(p Progress) {
		if p.Phase == "revert" && p.Done > 300 {
			cancel()
		}
	}
	applied, _ := ex.Applied(ctx)
	plan, _ := ex.Plan("gw", "0001_initial", applied)
	if _, err := ex.Run(ctx, plan, RunOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want an interrupted revert, got %v", err)
	}
	if applied, err := ex.Applied(ctxT(t)); err != nil || applied[V3Store] != Partial {
		t.Fatalf("after an interrupted revert the move is %q (%v), want partial", applied[V3Store], err)
	}
	results, err := e.migrate(ctxT(t), t, "", "", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 3 || results[0].Key != V3Store {
		t.Fatalf("migrate ran %v, want 0002, 0003, 0004", results)
	}
	e.assertMoved(t, true)
	if alpha := e.bucket(t, "alpha"); alpha["syncing"] != false {
		t.Errorf("alpha after migrating again: %v", alpha)
	}
}
