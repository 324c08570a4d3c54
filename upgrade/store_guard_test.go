package upgrade

import (
	"context"
	"errors"
	"testing"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/fencing"
)

// A master deposed between its decision and its write (issue 20's
// run-record-guard and node-record-guard mutants): its writes of the run
// record and of a node's steps are refused with ErrNotLeader and nothing
// lands, while the same writes under the live term do.
func TestDeposedMasterCannotSaveTheRunRecord(t *testing.T) {
	m := embed.NewTestMember(t)
	cli := embed.NewTestClient(t, m.Endpoints())
	ctx := context.Background()
	s := NewStore(cli, DefaultKeys)
	old, err := cli.Put(ctx, DefaultKeys.Election()+"old", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	ended := fencing.NewGuard(DefaultKeys.Election()+"old", old.Header.Revision)
	if _, err := cli.Delete(ctx, ended.Key); err != nil { // the term ends
		t.Fatal(err)
	}
	cur, err := cli.Put(ctx, DefaultKeys.Election()+"new", "node-2")
	if err != nil {
		t.Fatal(err)
	}
	live := fencing.NewGuard(DefaultKeys.Election()+"new", cur.Header.Revision)

	// A new run record, then an update of it.
	if _, err := s.saveRun(ctx, &Run{Request: Request{ID: "u"}, State: StateRunning, Leader: "node-1"}, ended, -1); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed master's new run record: want ErrNotLeader, got %v", err)
	}
	if _, _, err := s.Run(ctx, "u"); !errors.Is(err, ErrNoRun) {
		t.Fatalf("a deposed master created the run record (%v)", err)
	}
	rev, err := s.saveRun(ctx, &Run{Request: Request{ID: "u"}, State: StateDone, Leader: "node-2"}, live, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.saveRun(ctx, &Run{Request: Request{ID: "u"}, State: StateRunning, Leader: "node-1"}, ended, rev); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed master's run record update: want ErrNotLeader, got %v", err)
	}
	if r, _, err := s.Run(ctx, "u"); err != nil || r.State != StateDone || r.Leader != "node-2" {
		t.Fatalf("a deposed master flipped the finished run record: %+v (%v)", r, err)
	}

	// A node's steps.
	write := func(*NodeSteps) *NodeSteps {
		return &NodeSteps{Run: "u", Node: "node-3", Steps: []Step{{Name: StepCA, State: StateRunning}}}
	}
	if err := s.updateNode(ctx, "u", "node-3", ended, write); !errors.Is(err, fencing.ErrNotLeader) {
		t.Fatalf("deposed master's node steps: want ErrNotLeader, got %v", err)
	}
	if ns, _, err := s.nodeSteps(ctx, "u", "node-3"); err != nil || ns != nil {
		t.Fatalf("a deposed master wrote node-3's steps: %+v (%v)", ns, err)
	}
	if err := s.updateNode(ctx, "u", "node-3", live, write); err != nil {
		t.Fatal(err)
	}
	if ns, _, err := s.nodeSteps(ctx, "u", "node-3"); err != nil || ns == nil {
		t.Fatalf("the master's write of node-3's steps is missing (%v)", err)
	}
}
