package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestDeletePrefixTakesEveryPageAndNothingElse drops a prefix of 50 keys
// seven keys per request, beside keys that share its first bytes: every
// key under it goes, page after page, and its neighbours stay.
func TestDeletePrefixTakesEveryPageAndNothingElse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := open(ctx, Config{Dir: t.TempDir(), Log: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.close(context.Background())
	for i := 0; i < 50; i++ {
		if _, err := e.cli.Put(ctx, fmt.Sprintf("/s/ceiling/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	neighbours := []string{"/s/ceiling", "/s/ceiling0", "/s/ceilinh/1", "/s/a"}
	for _, k := range neighbours {
		if _, err := e.cli.Put(ctx, k, "kept"); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := deletePrefix(ctx, e.cli, "/s/ceiling/", 7)
	if err != nil {
		t.Fatal(err)
	}
	all, err := e.cli.Get(ctx, "/s/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, kv := range all.Kvs {
		left = append(left, string(kv.Key))
	}
	if fmt.Sprint(left) != fmt.Sprint([]string{"/s/a", "/s/ceiling", "/s/ceiling0", "/s/ceilinh/1"}) {
		t.Fatalf("after deleting /s/ceiling/: %v left, want the four neighbours only", left)
	}
	if rev != all.Header.Revision {
		t.Errorf("deletePrefix returned revision %d, the store is at %d", rev, all.Header.Revision)
	}
}
