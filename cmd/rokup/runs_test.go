package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/upgrade"
)

// A failed run that left its fence: status names the fence and the two
// ways on, resume and release with its risk, in text and in JSON.
func TestStatusOfAFailedRunNamesItsFenceAndTheNextCommand(t *testing.T) {
	m := embed.NewTestMember(t)
	cli3 := embed.NewTestClient(t, m.Endpoints())
	ep := "--endpoints=" + m.ClientURL()
	run := upgrade.Run{Request: upgrade.Request{ID: "t1", Action: "upgrade", Mode: "nodelocal"}, State: upgrade.StateFailed,
		Error: "step epochs-nodelocal: on n1: storage root unusable", Steps: []upgrade.Step{}}
	b, _ := json.Marshal(run)
	if _, err := cli3.Put(context.Background(), upgrade.DefaultKeys.Run("t1"), string(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := fencing.NewFence(cli3).Set(context.Background(), "upgrade/t1", "Rok 0.14 upgrade, run t1"); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runRokup(t, "status", "--id", "t1", ep)
	for _, want := range []string{`GC is still fenced, held by "upgrade/t1"`, "rokup start --id t1", "rokup fence release --holder upgrade/t1", "risk:"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("status: exit %d, want %q in:\n%s%s", code, want, out, errs)
		}
	}
	code, out, _ = runRokup(t, "status", "--id", "t1", ep, "-o", "json")
	var v struct {
		State string           `json:"state"`
		Fence *fencing.Holding `json:"fence"`
		Next  []string         `json:"next"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.State != "failed" || v.Fence == nil || v.Fence.Holder != "upgrade/t1" || len(v.Next) != 2 {
		t.Fatalf("status -o json: exit %d:\n%s", code, out)
	}
	// Once the fence is gone, status no longer says it is held.
	if _, err := fencing.NewFence(cli3).Release(context.Background(), "upgrade/t1"); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runRokup(t, "status", "--id", "t1", ep); code != 0 || strings.Contains(out, "still fenced") || !strings.Contains(out, "not fenced by this run") {
		t.Fatalf("status after release: exit %d:\n%s", code, out)
	}
}

// status -o json carries the sidecars with their storage readiness, live
// or not; the text names what a live one cannot run.
func TestStatusShowsTheSidecarsAndTheirReadiness(t *testing.T) {
	m := embed.NewTestMember(t)
	cli3 := embed.NewTestClient(t, m.Endpoints())
	ep := "--endpoints=" + m.ClientURL()
	ready := upgrade.CheckStorage("n9", "/nonexistent/nodelocal", "", nil)
	info, _ := json.Marshal(upgrade.MemberInfo{Node: "n9", Version: "test", Ready: &ready})
	ctx := context.Background()
	for _, k := range []string{upgrade.DefaultKeys.Member("n9"), upgrade.DefaultKeys.Known() + "n9", upgrade.DefaultKeys.Known() + "n8"} {
		if _, err := cli3.Put(ctx, k, string(info)); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := runRokup(t, "status", ep, "-o", "json")
	var v struct {
		Runs     []any `json:"runs"`
		Sidecars []struct {
			Node  string             `json:"node"`
			Live  bool               `json:"live"`
			Ready *upgrade.Readiness `json:"ready"`
		} `json:"sidecars"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.Runs == nil || len(v.Sidecars) != 2 ||
		v.Sidecars[0].Node != "n8" || v.Sidecars[0].Live || v.Sidecars[1].Node != "n9" || !v.Sidecars[1].Live ||
		v.Sidecars[1].Ready == nil || v.Sidecars[1].Ready.Cannot("epochs-nodelocal") == "" {
		t.Fatalf("status -o json: exit %d:\n%s", code, out)
	}
	if code, out, _ := runRokup(t, "status", ep); code != 0 || !strings.Contains(out, "n9 cannot run epochs-nodelocal: nodelocal root") {
		t.Fatalf("status: exit %d:\n%s", code, out)
	}
}
