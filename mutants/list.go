package main

// unlinkAfterCommit puts back the old protocol of the GC window: no file
// set aside, the object's own path unlinked once its key's deletion
// committed, nothing put back.
var unlinkAfterCommit = []Edit{
	{Find: `vanished, err := d.tombs.setAside(d.c.path, d.name)`, Replace: `vanished, err := false, error(nil)`},
	{Find: `size, err := d.tombs.remove(d.name)`, Replace: `size, err := int64(0), os.Remove(d.c.path)`},
	{Find: `_, err := putBack(d.tombs.path(d.name), d.c.path)`, Replace: `var err error`},
	{Find: `"io/fs"`, Replace: "\"io/fs\"\n\t\"os\""},
}

// Mutants is the list: every compare or check the project's safety rests
// on (issue 20), taken out one at a time. Add the tests that kill a new
// guard here when you write the guard.
var Mutants = []Mutant{
	// The CA cache look-up.
	{
		Name: "touch-epoch-compare",
		File: "libmap/cache.go",
		Edits: []Edit{
			{Find: `clientv3.Compare(clientv3.CreateRevision(key), ">", 0), clientv3.Compare(clientv3.ModRevision(c.epochKey), "=", rev)).`,
				Replace: `clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).`},
			{Find: `if resp.Succeeded { return true, nil }`, Replace: `_ = rev; if resp.Succeeded { return true, nil }`},
		},
		Pkgs: []string{"./libmap"}, Run: "^TestTouch", Fast: true,
		Why: "a touch racing a GC's epoch advance must stamp the new epoch G, or the GC collects what a composer relies on",
	},

	// The leader guard, wherever a master writes.
	{
		Name:  "guard-cmps",
		File:  "fencing/guard.go",
		Edits: []Edit{{Find: `return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(g.Key), "=", g.Rev)}`, Replace: `return nil`}},
		Pkgs:  []string{"./fencing"}, Run: "^TestDeposedLeaderWriteFailsAfterNewLeaderIsElected$|^TestPausedLeaderWhoseSessionExpiredCannotWrite$", Fast: true,
		Why: "Guard.Cmps is what every master-only transaction puts in its If",
	},
	{
		Name:  "guard-cmps-deposed-master",
		File:  "fencing/guard.go",
		Edits: []Edit{{Find: `return []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(g.Key), "=", g.Rev)}`, Replace: `return nil`}},
		Pkgs:  []string{"./integration"}, Run: "^TestDeposedMasterStampIsRefused$",
		Why: "end to end: a master deposed between its guard check and its first stamp writes nothing",
	},
	{
		Name:  "batch-guard",
		File:  "batch/batch.go",
		Edits: []Edit{{Find: `guard := w.cfg.Guard.Cmps()`, Replace: `var guard []clientv3.Cmp`}},
		Pkgs:  []string{"./batch"}, Run: "^TestWriterStopsWhenGuardFails$", Fast: true,
		Why: "the batch writer carries the stamping of epochs-ca and the Gateway move",
	},
	{
		Name:  "batch-guard-deposed-master",
		File:  "batch/batch.go",
		Edits: []Edit{{Find: `guard := w.cfg.Guard.Cmps()`, Replace: `var guard []clientv3.Cmp`}},
		Pkgs:  []string{"./integration"}, Run: "^TestDeposedMasterStampIsRefused$",
		Why: "end to end: TestMasterLostDuringEpochsCA alone passes without it (the deposed master has nothing left to stamp)",
	},
	{
		Name:  "stamp-guard",
		File:  "libmap/stamp.go",
		Edits: []Edit{{Find: `Guard: cfg.Guard,`, Replace: ``}},
		Pkgs:  []string{"./libmap"}, Run: "^TestStampWithEndedTermFailsNotLeader$", Fast: true,
		Why: "the stamper hands the guard to its batch writer",
	},
	{
		Name: "ledger-guard",
		File: "gateway/recorder.go",
		Edits: []Edit{{Find: `If(append(r.guard.Cmps(), clientv3.Compare(clientv3.CreateRevision(key), "=", 0))...).`,
			Replace: `If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).`}},
		Pkgs: []string{"./gateway"}, Run: "^TestLedgerRecordOfAnEndedTermWritesNothing$", Fast: true,
		Why: "a deposed master must not record a migration as applied",
	},
	{
		Name: "republish-guard",
		File: "gateway/buckets.go",
		Edits: []Edit{{Find: `If(append(opts.Guard.Cmps(), clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision))...).`,
			Replace: `If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).`}},
		Pkgs: []string{"./gateway"}, Run: "^TestRepublishOfAnEndedTermWritesNothing$", Fast: true,
		Why: "a deposed master must not rewrite bucket documents",
	},
	{
		Name:  "move-guard",
		File:  "gateway/move_copy.go",
		Edits: []Edit{{Find: `Guard: m.opts.Guard,`, Replace: ``}},
		Pkgs:  []string{"./gateway"}, Run: "^TestMoveWhoseTermEndsMidCopyWritesNoDocument$", Fast: true,
		Why: "the move's copy goes through a batch writer that carries the leader guard",
	},
	{
		Name: "v2-cleanup-guard",
		File: "libmap/v2cleanup.go",
		Edits: []Edit{{Find: `if err := task.Guard.Check(ctx, h.kv); err != nil { return fmt.Errorf("%s: %w", HookV2Cleanup, err) }`,
			Replace: ``}},
		Pkgs: []string{"./libmap"}, Run: "^TestV2CleanupHookRemovesSeededV2Epochs$", Fast: true,
		Why: "a v2 delete cannot carry a v3 compare: the guard is checked right before it",
	},
	{
		Name:  "run-record-guard",
		File:  "upgrade/store.go",
		Edits: []Edit{{Find: `cmps := g.Cmps()`, Replace: `var cmps []clientv3.Cmp`}},
		Pkgs:  []string{"./upgrade"}, Run: "^TestDeposedMasterCannotSaveTheRunRecord$", Fast: true,
		Why: "a deposed master must not flip the run record (e.g. back to running)",
	},
	{
		Name:  "node-record-guard",
		File:  "upgrade/store.go",
		Edits: []Edit{{Find: `If(append(g.Cmps(), cmp)...)`, Replace: `If(cmp)`}},
		Pkgs:  []string{"./upgrade"}, Run: "^TestDeposedMasterCannotSaveTheRunRecord$", Fast: true,
		Why: "a deposed master must not rewrite a node's steps",
	},

	// The GC's fence and its deletions.
	{
		Name: "register-fence",
		File: "fencing/instance.go",
		Edits: []Edit{{Find: `If(c.fence.AbsentCmp(), clientv3.Compare(clientv3.CreateRevision(in.key), "=", 0)).`,
			Replace: `If(clientv3.Compare(clientv3.CreateRevision(in.key), "=", 0)).`}},
		Pkgs: []string{"./fencing"}, Run: "^TestRegisterRefusesWhenFencedNamingTheHolder$", Fast: true,
		Why: "no GC registers while the fence is set",
	},
	{
		Name:  "gc-delete-fence",
		File:  "gc/gc.go",
		Edits: []Edit{{Find: `g.cmps = append(cfg.Guard.Cmps(), cfg.Fence.AbsentCmp(), g.inst.Cmp())`, Replace: `g.cmps = append(cfg.Guard.Cmps(), g.inst.Cmp())`}},
		Pkgs:  []string{"./gc"}, Run: "^TestFenceSetWhileSweepingStopsEveryLaterDeletion$", Fast: true,
		Why: "a fence set at any moment stops a running GC before its next deletion",
	},
	{
		Name:  "gc-delete-instance",
		File:  "gc/gc.go",
		Edits: []Edit{{Find: `g.cmps = append(cfg.Guard.Cmps(), cfg.Fence.AbsentCmp(), g.inst.Cmp())`, Replace: `g.cmps = append(cfg.Guard.Cmps(), cfg.Fence.AbsentCmp())`}},
		Pkgs:  []string{"./gc"}, Run: "^TestInstanceLostWhileSweepingStopsEveryLaterDeletion$", Fast: true,
		Why: "a GC whose instance lease expired (paused, partitioned) deletes nothing more",
	},
	{
		Name:  "gc-delete-modrev",
		File:  "gc/sweep.go",
		Edits: []Edit{{Find: `Cmps: []clientv3.Cmp{g.cfg.Cache.Unchanged(e)},`, Replace: `Cmps: nil,`}},
		Pkgs:  []string{"./gc"}, Run: "^TestEveryInterleavingOfASweepAndAComposerKeepsTheComposersWrite$", Fast: true,
		Why: "a touch between the GC's read of an epoch and its deletion wins (the enumeration drives that order, every time)",
	},

	// The GC window (issue 18): a file goes only after its key's deletion
	// committed, and only the file the GC set aside.
	{
		Name:  "gc-unlink-after-commit",
		File:  "gc/sweep.go",
		Edits: unlinkAfterCommit,
		Pkgs:  []string{"./gc"}, Run: "^TestEveryInterleavingOfASweepAndAComposerKeepsTheComposersWrite$", Fast: true,
		Why: "the old protocol (delete the key, then unlink the object's path) removes a file a composer told \"missing\" wrote meanwhile",
	},
	{
		Name:  "gc-unlink-after-commit-e2e",
		File:  "gc/sweep.go",
		Edits: unlinkAfterCommit,
		Pkgs:  []string{"./integration"}, Run: "^TestComposersRewritingWhileRokGCSweeps$",
		Why: "end to end with real processes: composers rewriting while rok-gc sweeps 100k garbage chocks",
	},
	{
		Name:  "gc-putback-replaces",
		File:  "gc/aside.go",
		Edits: []Edit{{Find: `gone, err := moveFile(renameNoReplace, tomb, path)`, Replace: `gone, err := moveFile(os.Rename, tomb, path)`}},
		Pkgs:  []string{"./gc"}, Run: "^TestEveryInterleavingOfASweepAndAComposerKeepsTheComposersWrite$|^TestRecoverPutsBackOnlyDeadInstancesFilesAndNeverReplaces$", Fast: true,
		Why: "putting a file back must never replace the newer one a composer wrote since",
	},
	{
		Name:  "gc-recover-before-mark",
		File:  "gc/gc.go",
		Edits: []Edit{{Find: `rec, err := Recover(ctx, g.cli, []string{g.root()}, g.inst.Lease())`, Replace: `rec, err := Recovered{}, error(nil)`}},
		Pkgs:  []string{"./gc"}, Run: "^TestNextRunPutsBackWhatAKilledRunSetAsideBeforeItsMark$", Fast: true,
		Why: "a map a killed GC left set aside may be a root by now: the mark must see it",
	},
	{
		Name:  "gc-recover-live-lease",
		File:  "gc/aside.go",
		Edits: []Edit{{Find: `if alive { n, _ := countFiles(dir)`, Replace: `if alive && false { n, _ := countFiles(dir)`}},
		Pkgs:  []string{"./gc"}, Run: "^TestRecoverPutsBackOnlyDeadInstancesFilesAndNeverReplaces$", Fast: true,
		Why: "a recovery must leave a running GC's files alone",
	},

	// The Gateway move.
	{
		Name:  "move-create-compare",
		File:  "gateway/move_copy.go",
		Edits: []Edit{{Find: `return batch.Item{Cmps: one.cmp[:], Ops: one.op[:], Size: len(k) + len(value)}`, Replace: `return batch.Item{Ops: one.op[:], Size: len(k) + len(value)}`}},
		Pkgs:  []string{"./gateway"}, Run: "^TestConflictingV3KeyIsReportedNotOverwritten$", Fast: true,
		Why: "the move creates v3 keys only where none exists: another value is a conflict, not overwritten",
	},
	{
		Name:  "move-extra-delete-compare",
		File:  "gateway/move_extra.go",
		Edits: []Edit{{Find: `Cmps: []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)},`, Replace: ``}},
		Pkgs:  []string{"./gateway"}, Run: "^TestOverwriteLeavesAV3OnlyKeyWrittenAgainAfterTheCheck$", Fast: true,
		Why: "--overwrite deletes a v3-only key only while it holds what the check read: one written again meanwhile is kept",
	},
	{
		Name:  "verify-bytes",
		File:  "gateway/readback.go",
		Edits: []Edit{{Find: `if len(kvs) == 1 && string(kvs[0].Value) == d.n.Value {`, Replace: `if len(kvs) == 1 {`}},
		Pkgs:  []string{"./gateway"}, Run: "^TestV3KeyChangedAfterTheCopyFailsVerification$", Fast: true,
		Why: "the move is recorded only once v3 holds every v2 document's bytes",
	},
	{
		Name:  "watch-digest",
		File:  "gateway/move_watch.go",
		Edits: []Edit{{Find: `if got.n != m.read.n || got.sum != m.read.sum {`, Replace: `if false {`}},
		Pkgs:  []string{"./gateway"}, Run: "^TestV3WriteUnderThePrefixDuringTheCopyIsCaughtByTheWatch$", Fast: true,
		Why: "the watch verifies the move only when what it created is exactly what the copy read",
	},
}
