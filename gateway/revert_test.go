package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"

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
		"/other/app/key":                 "not the Gateway's",
		e.store.prefix + "/v3only/doc":   "written in v3 by someone else",
		same:                             e.store.docs[same], // already moved by hand, same bytes
		e.store.prefix + "/zz/after/all": "sorts after the documents",
	} {
		if _, err := e.cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, e.cli)
	if _, err := e.migrate(ctx, t, "", "", MoveOptions{}); err != nil {
		t.Fatal(err)
	}
	results, err := e.migrate(ctx, t, "gw", "0001_initial", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || !results[0].Backward || results[0].Key != Published || results[1].Key != V3Store {
		t.Fatalf("revert ran %v, want 0003 then 0002 backwards", results)
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
	// And the move can be applied again.
	results, err = e.migrate(ctx, t, "", "", MoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep := results[0].Result.Report.(MoveReport); rep.Checksum != expectedChecksum(e.store) || rep.Identical != 1 {
		t.Errorf("re-applied move: checksum %s (want %s), %d identical (want 1)", rep.Checksum, expectedChecksum(e.store), rep.Identical)
	}
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

func TestOversizeDocumentFailsBeforeAnyWrite(t *testing.T) {
	e := newEnv(t, seedSize{docs: 200, big: true, ledge: true})
	ctx := ctxT(t)
	_, err := e.migrate(ctx, t, "", "", MoveOptions{MaxRequestBytes: 512 << 10})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "/rok/gw/blobs/one-mib") || !strings.Contains(err.Error(), "--max-request-bytes") {
		t.Fatalf("want ErrTooLarge naming the document and the flag, got %v", err)
	}
	if got := e.v3Docs(t); len(got) != 0 {
		t.Errorf("an oversize document left %d keys written", len(got))
	}
	if got := strings.Join(appliedKeys(t, e.executor(t, MoveOptions{})), " "); got != "gw.0001_initial" {
		t.Errorf("ledger: %s", got)
	}
}

func TestSmallTransactionsStillMoveEverything(t *testing.T) {
	e := newEnv(t, seedSize{docs: 300, big: true, ttls: 8})
	results, err := e.migrate(ctxT(t), t, "", "", MoveOptions{MaxTxnOps: 5, MaxRequestBytes: 1300 << 10, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	e.assertMoved(t, true)
	// 0001_initial is not in v2 here: it ran and was recorded in v3.
	if len(results) != 3 {
		t.Errorf("ran %d steps, want 3", len(results))
	}
	// Five compares and five puts a transaction: five documents.
	if rep := results[1].Result.Report.(MoveReport); rep.Txns < int64(len(e.store.docs))/5 {
		t.Errorf("%d transactions for %d documents at 5 per transaction", rep.Txns, len(e.store.docs))
	}
}
