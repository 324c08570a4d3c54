package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
)

// TestBenchAgainstAClusterLeavesNothingBehind is the staging rehearsal: a
// bench against given endpoints prints the JSON of
// docs/design.md#performance and removes its scratch prefix from both
// stores.
func TestBenchAgainstAClusterLeavesNothingBehind(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/rok/gw/keep", "an operator's document"); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runRokup(t, "bench", "--endpoints="+m.ClientURL(), "--docs=100", "--objects=120",
		"--naive-sample=20", "--tune-items=50", "--dir="+t.TempDir(), "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		PeakRSS float64 `json:"peak_rss_mib"`
		Etcd    string  `json:"etcd"`
		Paths   []struct {
			Name    string   `json:"name"`
			Items   int64    `json:"items"`
			PerS    float64  `json:"per_s"`
			VsNaive *float64 `json:"vs_naive"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(res.Paths) != 9 || res.PeakRSS <= 0 || !strings.Contains(res.Etcd, "/rokup-bench/") {
		t.Fatalf("%d paths, peak %g, etcd %q", len(res.Paths), res.PeakRSS, res.Etcd)
	}
	for _, p := range res.Paths {
		if p.Name == "gw migrate" && (p.Items != 101 || p.VsNaive == nil) {
			t.Errorf("gw migrate: %d items, vs naive %v", p.Items, p.VsNaive)
		}
	}
	left, err := cli.Get(ctx, "/rokup-bench", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil || len(left.Kvs) != 0 {
		t.Errorf("v3 keys left under /rokup-bench: %d (%v)", len(left.Kvs), err)
	}
	if _, err := embed.NewTestV2(t, m.Endpoints()).Get(ctx, "/rokup-bench", nil); !clientv2.IsKeyNotFound(err) {
		t.Errorf("v2 /rokup-bench still there: %v", err)
	}
	if kept, err := cli.Get(ctx, "/rok/gw/keep"); err != nil || len(kept.Kvs) != 1 {
		t.Errorf("the cluster's own document: %v %v", kept, err)
	}
}

func TestBenchRejectsNothingToMeasure(t *testing.T) {
	if code, _, errs := runRokup(t, "bench", "--docs=0", "--objects=0"); code != 2 || !strings.Contains(errs, "nothing to measure") {
		t.Fatalf("exit %d, %q; want 2 and why", code, errs)
	}
}
