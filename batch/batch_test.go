package batch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
)

func TestWriterCommitsEverythingWithinLimits(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	var commits int
	w := batch.New(ctx, cli, batch.Config{MaxOps: 50, MaxBytes: 64 << 10, InFlight: 4})
	val := strings.Repeat("v", 1000)
	for i := 0; i < 2000; i++ {
		if err := w.Add(batch.Put(fmt.Sprintf("/k/%05d", i), val)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	commits = int(st.Txns)
	g, err := cli.Get(ctx, "/k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != 2000 || st.Items != 2000 {
		t.Fatalf("count %d stats %+v err %v", g.Count, st, err)
	}
	// 2000 items of ~1 KiB under a 64 KiB cap cannot fit in fewer than 32
	// transactions; the op cap alone would allow 40.
	if commits < 32 {
		t.Fatalf("only %d transactions: the byte bound was not applied", commits)
	}
}

func TestWriterRejectsOversizeItem(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	w := batch.New(context.Background(), cli, batch.Config{MaxBytes: 1024})
	if err := w.Add(batch.Put("/big", strings.Repeat("x", 2048))); !errors.Is(err, batch.ErrTooLarge) {
		t.Fatalf("want ErrTooLarge, got %v", err)
	}
}

func TestWriterStopsWhenGuardFails(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	put, err := cli.Put(ctx, "/leader/x", "me")
	if err != nil {
		t.Fatal(err)
	}
	g := fencing.NewGuard("/leader/x", put.Header.Revision)
	w := batch.New(ctx, cli, batch.Config{Guard: g, MaxOps: 10})
	for i := 0; i < 10; i++ {
		if err := w.Add(batch.Put(fmt.Sprintf("/g/%d", i), "1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("guard holds, flush: %v", err)
	}
	// A new term: the key is re-created with another revision.
	if _, err := cli.Delete(ctx, "/leader/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/leader/x", "other"); err != nil {
		t.Fatal(err)
	}
	_ = w.Add(batch.Put("/g/late", "1"))
	err = w.Close()
	if !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("want ErrNotLeader, got %v", err)
	}
	if g, _ := cli.Get(ctx, "/g/late"); len(g.Kvs) != 0 {
		t.Fatal("a write landed after the term ended")
	}
}

func TestWriterConflictGoesToResolver(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	if _, err := cli.Put(ctx, "/c/taken", "old"); err != nil {
		t.Fatal(err)
	}
	absent := func(k string) batch.Item {
		it := batch.Put(k, "new")
		it.Cmps = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}
		return it
	}
	var seen int
	w := batch.New(ctx, cli, batch.Config{OnConflict: func(ctx context.Context, items []batch.Item) error {
		seen = len(items)
		return nil
	}})
	for _, k := range []string{"/c/a", "/c/taken", "/c/b"} {
		if err := w.Add(absent(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if seen != 3 {
		t.Fatalf("resolver saw %d items, want the whole batch of 3", seen)
	}
	if g, _ := cli.Get(ctx, "/c/taken"); string(g.Kvs[0].Value) != "old" {
		t.Fatal("a compare-guarded put overwrote an existing key")
	}

	w = batch.New(ctx, cli, batch.Config{})
	_ = w.Add(absent("/c/taken"))
	if err := w.Close(); !errors.Is(err, batch.ErrConflict) {
		t.Fatalf("want ErrConflict without a resolver, got %v", err)
	}
}

func TestWriterSharedCmpsAndItemDone(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	stop := clientv3.Compare(clientv3.CreateRevision("/stop"), "=", 0)
	var conflicts int
	done := make(chan string, 100)
	w := batch.New(ctx, cli, batch.Config{
		MaxOps: 4, InFlight: 1, Cmps: []clientv3.Cmp{stop},
		OnConflict: func(_ context.Context, items []batch.Item) error {
			conflicts += len(items)
			return nil
		},
	})
	add := func(k string) {
		it := batch.Put(k, "v")
		it.Done = func() { done <- k }
		if err := w.Add(it); err != nil {
			t.Fatal(err)
		}
	}
	// MaxOps 4 with one shared compare: three puts per transaction.
	for _, k := range []string{"/a", "/b", "/c"} {
		add(k)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Txns != 1 {
		t.Fatalf("3 items in %d transactions, want 1", st.Txns)
	}
	if _, err := cli.Put(ctx, "/stop", "x"); err != nil {
		t.Fatal(err)
	}
	add("/d")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	close(done)
	var got []string
	for k := range done {
		got = append(got, k)
	}
	if len(got) != 3 || conflicts != 1 {
		t.Fatalf("done for %v and %d conflicts; want /a /b /c done and /d in conflict", got, conflicts)
	}
	if r, _ := cli.Get(ctx, "/d"); len(r.Kvs) != 0 {
		t.Fatal("/d was written through a failed shared compare")
	}
}

// etcd limits compares and operations separately: 128 guarded puts (one
// compare and one put each) fit in one transaction, not 64.
func TestWriterCountsComparesApartFromOps(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	w := batch.New(ctx, cli, batch.Config{})
	for i := 0; i < 256; i++ {
		k := fmt.Sprintf("/sep/%03d", i)
		it := batch.Put(k, "v")
		it.Cmps = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)}
		if err := w.Add(it); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("etcd refused a transaction: %v", err)
	}
	if st := w.Stats(); st.Txns != 2 || st.Items != 256 {
		t.Fatalf("256 guarded puts went in %d transactions (%d items), want 2", st.Txns, st.Items)
	}
}

// A byte bound on the transactions in flight: small items keep InFlight
// transactions going, large ones as many as the bound holds (one, when a
// single transaction passes it).
func TestWriterBoundsTheBytesInFlight(t *testing.T) {
	ctx := context.Background()
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	for _, tc := range []struct {
		name         string
		value, bound int
		wantMax      int64
	}{
		{"small items", 100, 1 << 20, 8},
		{"large items", 30 << 10, 200 << 10, 3}, // 2 items of ~30 KiB a transaction: 60 KiB
		{"past the bound", 30 << 10, 10 << 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := &countingKV{KV: cli}
			w := batch.New(ctx, kv, batch.Config{MaxOps: 2, InFlight: 8, InFlightBytes: tc.bound})
			val := strings.Repeat("v", tc.value)
			for i := 0; i < 64; i++ {
				if err := w.Add(batch.Put(fmt.Sprintf("/b/%s/%03d", tc.name, i), val)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := kv.max.Load(); got > tc.wantMax || (tc.wantMax > 1 && got < 2) {
				t.Fatalf("%d transactions in flight at most, want up to %d", got, tc.wantMax)
			}
		})
	}
}

// countingKV counts the transactions in flight, each held a moment so that
// they overlap.
type countingKV struct {
	clientv3.KV
	now, max atomic.Int64
}

func (k *countingKV) Txn(ctx context.Context) clientv3.Txn {
	return &countingTxn{Txn: k.KV.Txn(ctx), kv: k}
}

type countingTxn struct {
	clientv3.Txn
	kv *countingKV
}

func (t *countingTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *countingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *countingTxn) Commit() (*clientv3.TxnResponse, error) {
	n := t.kv.now.Add(1)
	for {
		m := t.kv.max.Load()
		if n <= m || t.kv.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(20 * time.Millisecond)
	defer t.kv.now.Add(-1)
	return t.Txn.Commit()
}
