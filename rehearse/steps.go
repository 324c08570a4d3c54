package rehearse

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/rokup/rokup/batch"
	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/gc"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/upgrade"
)

// The etcd-side steps of the run in the plan's order (docs/design.md#plan),
// each the code the sidecar runs: gc-fence and gc-unfence are gc's hooks,
// v2-epochs-cleanup is libmap's, and gw-migrate is the executor the
// gw-migrate hook drives (which returns no report), then Republish. The
// storage steps between them (epochs-nodelocal, epochs-ca) read the nodes'
// storage and are not rehearsed.

// steps runs the steps on the copy. A step that fails is a problem of
// the real run; the rehearsal goes on to the next step so that the
// report says as much as it can.
func (x *rehearsal) steps(ctx context.Context) error {
	task := hooks.Task{RunID: x.opts.RunID, Node: "rehearsal"}
	x.hook(ctx, gc.NewFenceHook(x.c.v3), task, 1, "fence")
	if err := x.migrate(ctx); err != nil {
		return err
	}
	x.republish(ctx)
	x.hook(ctx, libmap.NewV2CleanupHook(x.c.keys, x.c.v3, x.opts.V2Epochs), task, x.r.Store.V2EpochKeys, "v2cleanup")
	x.hook(ctx, gc.NewUnfenceHook(x.c.v3), task, 1, "fence")
	x.downtime()
	return ctx.Err()
}

// hook runs one step's hook as the sidecar would, timed; items is what
// the step works through (for its rate).
func (x *rehearsal) hook(ctx context.Context, h hooks.Hook, task hooks.Task, items int64, check string) {
	st := Step{Name: h.Name(), Items: items}
	task.Report = func(p hooks.Progress) {
		st.Note = p.Note
		x.progress(h.Name(), p.Done, p.Total)
	}
	t0 := time.Now()
	err := h.Run(ctx, task)
	x.done(&st, t0, err)
	if err != nil && !x.hasProblem(check) {
		x.problem(Problem{Check: check, Detail: fmt.Sprintf("%s fails: %v", h.Name(), err)})
	}
}

func (x *rehearsal) done(st *Step, t0 time.Time, err error) {
	st.Seconds = time.Since(t0).Seconds()
	if err != nil {
		st.Error = err.Error()
	} else if st.Seconds > 0 && st.Items > 1 {
		st.PerSec = float64(st.Items) / st.Seconds
	}
	x.r.Steps = append(x.r.Steps, *st)
}

func (x *rehearsal) progress(step string, done, total int64) {
	if x.opts.Progress != nil {
		x.opts.Progress(step, done, total)
	}
}

// migrate applies the Gateway migrations the real run would apply. When
// the move fails on something the operator must fix (oversize documents,
// v3 keys holding other bytes), the problem is named, the copy is made
// to pass (the oversize documents deleted from the copy's v2 and the
// partial move reverted, or the conflicting keys overwritten) and the
// move runs again, so that its time and the later steps are still
// measured.
func (x *rehearsal) migrate(ctx context.Context) error {
	st := Step{Name: upgrade.StepMigrate}
	mo := gateway.MoveOptions{Force: x.hasProblem("gateway")}
	if mo.Force {
		x.note("the copy holds Gateway liveness keys: the rehearsal moved with --force to measure; the real run will refuse")
	}
	var (
		moved     *gateway.MoveReport
		big       []bigDoc
		t0        = time.Now()
		firstCopy map[string]float64 // the phases of the attempt that copied everything first
		runErr    error
		last      []gateway.StepResult
	)
	// Each problem the copy is made to pass is passed once: at most three
	// attempts.
	for attempt := 0; ; attempt++ {
		results, applied, plan, err := x.runMigrations(ctx, mo)
		if attempt == 0 {
			x.r.Applied, x.r.Plan = applied, plan
		}
		last = results
		var rep *gateway.MoveReport
		for _, res := range results {
			switch r := res.Result.Report.(type) {
			case gateway.MoveReport:
				rep = &r
			case gateway.BucketsReport:
				x.r.Store.Published = r.Published
			}
		}
		if rep != nil && (err == nil || moved == nil) {
			moved = rep
		}
		switch {
		case err == nil:
			runErr = nil
		case errors.Is(err, gateway.ErrTooLarge) && big == nil:
			if big, err = x.setAsideOversize(ctx); err != nil {
				return err
			}
			// What the failed move copied before the document stays in
			// v3; reverted, the re-run copies everything and is timed
			// as the real run's move would be.
			if err := x.revertMove(ctx, mo); err != nil {
				return err
			}
			continue
		case errors.Is(err, gateway.ErrConflict) && !mo.Overwrite && rep != nil:
			x.conflicts(rep)
			firstCopy = rep.PhaseSeconds
			mo.Overwrite = true
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			runErr = err
			x.problem(Problem{Check: "migrate", Detail: fmt.Sprintf("gw-migrate fails: %v", err)})
		}
		break
	}
	if moved != nil {
		x.store(moved, big)
		st.Items, st.Phases = moved.Docs, moved.PhaseSeconds
		if firstCopy != nil && runErr == nil {
			// The re-run found the documents copied: the first attempt's
			// copy and the re-run's verification are the move.
			st.Phases = map[string]float64{"read": firstCopy["read"], "copy": firstCopy["copy"], "verify": moved.PhaseSeconds["verify"]}
			x.note("v3 keys held other bytes: the rehearsal re-ran the move with --overwrite to finish it; the time is the first attempt's copy with the re-run's verification")
		}
	} else if runErr == nil {
		if err := x.countOnly(ctx, mo); err != nil {
			return err
		}
	}
	x.done(&st, t0, runErr)
	if moved != nil && runErr == nil && moved.Checksum != "" {
		x.r.Verified, x.r.Checksum = true, moved.Checksum
	}
	x.migrateSecs = st.Seconds
	if moved != nil && runErr == nil {
		// The step's rate is the move's, the ledger writes around it aside.
		if s := moveSeconds(st.Phases); s > 0 {
			st.PerSec = float64(moved.Docs) / s
			x.r.Steps[len(x.r.Steps)-1].PerSec = st.PerSec
		}
		if len(big) > 0 || firstCopy != nil {
			// The step's time holds the failed attempts: the real run's
			// is the last attempt's, with the move's time as measured.
			x.migrateSecs = 0
			for _, r := range last {
				if r.Key == gateway.V3Store {
					x.migrateSecs += moveSeconds(st.Phases)
				} else {
					x.migrateSecs += r.Elapsed.Seconds()
				}
			}
		}
	}
	return nil
}

// moveSeconds is the move's time from its phases: the copy (which reads
// v2 as it writes) and the verification.
func moveSeconds(phases map[string]float64) float64 {
	return phases["copy"] + phases["verify"]
}

// revertMove reverts the copy's partial move (gw back to 0001_initial,
// as rok-gw-manage migrate gw 0001_initial does).
func (x *rehearsal) revertMove(ctx context.Context, mo gateway.MoveOptions) error {
	ex, err := gateway.NewExecutor(gateway.GW(), gateway.Env{V3: x.c.v3, V2: x.c.keys, Prefix: x.opts.GWPrefix, Move: mo})
	if err != nil {
		return err
	}
	applied, err := ex.Applied(ctx)
	if err != nil {
		return err
	}
	plan, err := ex.Plan(gateway.Initial.App, gateway.Initial.Name, applied)
	if err != nil {
		return err
	}
	if _, err := ex.Run(ctx, plan, gateway.RunOptions{}); err != nil {
		return fmt.Errorf("rehearse: revert the partial move on the copy: %w", err)
	}
	return nil
}

// runMigrations plans and runs the Gateway migrations as the gw-migrate
// hook does.
func (x *rehearsal) runMigrations(ctx context.Context, mo gateway.MoveOptions) ([]gateway.StepResult, []string, []string, error) {
	ex, err := gateway.NewExecutor(gateway.GW(), gateway.Env{V3: x.c.v3, V2: x.c.keys, Prefix: x.opts.GWPrefix, Move: mo})
	if err != nil {
		return nil, nil, nil, err
	}
	ex.OnProgress = func(p gateway.Progress) { x.progress(upgrade.StepMigrate+" "+p.Phase, p.Done, p.Total) }
	applied, err := ex.Applied(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	plan, err := ex.Plan("", "", applied)
	if err != nil {
		return nil, nil, nil, err
	}
	var done, todo []string
	for k, src := range applied {
		if src != gateway.Partial {
			done = append(done, fmt.Sprintf("%s (%s)", k, src))
		}
	}
	sort.Strings(done)
	for _, s := range plan {
		todo = append(todo, s.Key.String())
	}
	results, err := ex.Run(ctx, plan, gateway.RunOptions{})
	return results, done, todo, err
}

// setAsideOversize names every oversize document (the move stops at the
// first) and deletes them from the copy's v2, so that the move can be
// measured on the rest.
func (x *rehearsal) setAsideOversize(ctx context.Context) ([]bigDoc, error) {
	big, err := oversize(ctx, x.c.keys, x.opts.GWPrefix, batch.DefaultMaxBytes)
	if err != nil {
		return nil, err
	}
	for _, b := range big {
		x.problem(Problem{Check: "oversize", Key: b.key, Size: b.size, Detail: fmt.Sprintf("%s holds %d bytes: more than one transaction may carry (%d bytes with its key; etcd's server limit is 1.5 MiB); the move fails before any write until it is made smaller or removed", b.key, b.size, batch.DefaultMaxBytes)})
		if _, err := x.c.keys.Delete(ctx, b.key, nil); err != nil && !clientv2.IsKeyNotFound(err) {
			return nil, fmt.Errorf("rehearse: set aside %s in the copy: %w", b.key, conn.V2Error(err))
		}
	}
	if len(big) > 0 {
		x.note("the oversize documents (%d) were deleted from the copy so that the rest of the move could be measured", len(big))
	}
	return big, nil
}

// conflicts names the v3 keys that hold other bytes than v2's.
func (x *rehearsal) conflicts(rep *gateway.MoveReport) {
	for _, k := range rep.ConflictKeys {
		x.problem(Problem{Check: "conflict", Key: k, Detail: fmt.Sprintf("v3 key %s already holds other bytes than the v2 document; the move fails unless run with --overwrite (which replaces them)", k)})
	}
	if more := rep.Conflicts - int64(len(rep.ConflictKeys)); more > 0 {
		x.problem(Problem{Check: "conflict", Detail: fmt.Sprintf("%d more v3 keys hold other bytes than v2 (the first %d are named)", more, len(rep.ConflictKeys))})
	}
}

// store fills the report's account of the Gateway store from the move's,
// the set-aside oversize documents counted back in.
func (x *rehearsal) store(rep *gateway.MoveReport, big []bigDoc) {
	s := &x.r.Store
	s.Docs = rep.Docs + int64(len(big)) - s.LedgerEntries
	s.Bytes, s.TTLDocs, s.EmptyDirs, s.EmptyDirList = rep.Bytes, rep.TTLDocs, rep.EmptyDirs, rep.EmptyDirList
	for _, b := range big {
		s.Bytes += b.size
	}
	// A directory whose only documents were set aside is not empty in
	// the real store.
	s.EmptyDirList = nil
	for _, d := range rep.EmptyDirList {
		if holdsAny(d, big) {
			s.EmptyDirs--
			continue
		}
		s.EmptyDirList = append(s.EmptyDirList, d)
	}
	if s.Docs == 0 {
		x.note("v2 holds no Gateway document under %s: is this the right member and --gw-prefix?", x.opts.GWPrefix)
	}
}

// countOnly counts the store when the move is already recorded and
// therefore not in the plan.
func (x *rehearsal) countOnly(ctx context.Context, mo gateway.MoveOptions) error {
	rep, err := gateway.CountMove(ctx, x.c.v3, x.c.keys, mo)
	if err != nil {
		return fmt.Errorf("rehearse: count the store: %w", err)
	}
	x.store(&rep, nil)
	b, err := gateway.PublishedInV2(ctx, x.c.keys, x.opts.GWPrefix)
	if err != nil {
		return fmt.Errorf("rehearse: published buckets: %w", err)
	}
	x.r.Store.Published = b.Published
	x.note("the move is already recorded in this store's ledger: the real run moves nothing again")
	return nil
}

// republish re-publishes the published buckets, as gw-migrate does when
// the run asks for it (rokup start --republish).
func (x *rehearsal) republish(ctx context.Context) {
	st := Step{Name: "republish", Items: int64(len(x.r.Store.Published))}
	t0 := time.Now()
	rep, err := gateway.Republish(ctx, x.c.v3, nil, gateway.BucketsOptions{Prefix: x.opts.GWPrefix})
	if err == nil {
		st.Note = rep.String()
	}
	x.done(&st, t0, err)
	if err != nil {
		x.problem(Problem{Check: "step", Detail: fmt.Sprintf("republish fails: %v", err)})
	}
}

// downtime predicts the Gateway's: stopped before the run, it may start
// again once gw-migrate is done, so gc-fence and gw-migrate are its
// downtime (republish, when asked, runs while it serves).
func (x *rehearsal) downtime() {
	var secs, rate float64
	var basis []string
	for _, st := range x.r.Steps {
		if st.Name == gc.FenceHook || st.Name == upgrade.StepMigrate {
			s := st.Seconds
			if st.Name == upgrade.StepMigrate {
				s = x.migrateSecs
			}
			secs += s
			basis = append(basis, fmt.Sprintf("%s %.2fs", st.Name, s))
		}
		if st.Name == upgrade.StepMigrate {
			rate = st.PerSec
		}
	}
	if secs == 0 {
		return
	}
	x.r.Downtime = Downtime{Seconds: secs, MoveDocsPS: rate,
		Basis: fmt.Sprintf("%s: %d documents at %.0f/s", strings.Join(basis, " + "), x.r.Store.Docs+x.r.Store.LedgerEntries, rate)}
}

func holdsAny(dir string, docs []bigDoc) bool {
	for _, d := range docs {
		if strings.HasPrefix(d.key, dir+"/") {
			return true
		}
	}
	return false
}
