package gateway

import (
	"context"
	"fmt"
	"sort"
)

// The gw app's migrations.
var (
	Initial   = Key{"gw", "0001_initial"}
	V3Store   = Key{"gw", "0002_v3_store"}
	Published = Key{"gw", "0003_published_buckets"}
	MoveState = Key{"gw", "0004_move_state"}
)

// GW returns a loader holding the gw app: the v2-era baseline, the move
// to the v3 store, the marking of published buckets, and the conversion
// of an older rokup's bookkeeping of the move into the move's state key.
func GW() *Loader {
	r := NewLoader()
	r.MustRegister(Migration{
		App: Initial.App, Name: Initial.Name,
		// The v2-era layout needs no change; the v2 ledger usually holds it.
		Forward:  func(context.Context, *Env) (Result, error) { return Result{}, nil },
		Backward: func(context.Context, *Env) (Result, error) { return Result{}, nil },
	})
	r.MustRegister(Migration{
		App: V3Store.App, Name: V3Store.Name, Deps: []Key{Initial},
		Forward: func(ctx context.Context, env *Env) (Result, error) {
			rep, err := Move(ctx, env.V3, env.V2, env.Move)
			return moveResult(rep), err
		},
		Backward: func(ctx context.Context, env *Env) (Result, error) {
			rep, err := RevertMove(ctx, env.V3, env.V2, env.Move)
			return Result{Counts: map[string]int64{"deleted": rep.Deleted, "kept": rep.Kept, "created_after": rep.CreatedAfter}, Report: rep}, err
		},
		Pending: func(ctx context.Context, env *Env) (bool, error) {
			_, recorded := env.Applied[V3Store]
			return movePending(ctx, env.V3, env.Move, recorded)
		},
		DryRun: func(ctx context.Context, env *Env) (Result, error) {
			rep, err := CountMove(ctx, env.V3, env.V2, env.Move)
			return moveResult(rep), err
		},
	})
	r.MustRegister(Migration{
		App: Published.App, Name: Published.Name, Deps: []Key{V3Store},
		Forward: func(ctx context.Context, env *Env) (Result, error) {
			rep, err := MarkPublished(ctx, env.V3, BucketsOptions{Prefix: env.Prefix, Guard: env.Guard})
			return bucketsResult(rep), err
		},
		Backward: func(ctx context.Context, env *Env) (Result, error) {
			rep, err := RestoreBuckets(ctx, env.V3, env.V2, BucketsOptions{Prefix: env.Prefix, Guard: env.Guard})
			return bucketsResult(rep), err
		},
		DryRun: func(ctx context.Context, env *Env) (Result, error) {
			if !isApplied(env.Applied, V3Store) {
				rep, err := PublishedInV2(ctx, env.V2, env.Prefix)
				return bucketsResult(rep), err
			}
			rep, err := MarkPublished(ctx, env.V3, BucketsOptions{Prefix: env.Prefix, DryRun: true})
			return bucketsResult(rep), err
		},
	})
	r.MustRegister(Migration{
		App: MoveState.App, Name: MoveState.Name, Deps: []Key{Published},
		// rokup before the state key left one marker per transaction of the
		// move under the prefix, where Gateway 0.14 reads them as documents:
		// they become the state key, once. A store moved since has none.
		Forward: func(ctx context.Context, env *Env) (Result, error) {
			n, err := newStateStore(env.V3, env.Move).adoptMarkers(ctx)
			return Result{Counts: map[string]int64{"legacy_markers": n}}, err
		},
		// The state key holds what the markers said: nothing to undo.
		Backward: func(context.Context, *Env) (Result, error) { return Result{}, nil },
	})
	return r
}

func moveResult(rep MoveReport) Result {
	return Result{
		Counts: map[string]int64{
			"docs": rep.Docs, "bytes": rep.Bytes, "created": rep.Created, "identical": rep.Identical,
			"overwritten": rep.Overwritten, "ttl_docs": rep.TTLDocs, "leases": rep.Leases,
			"empty_dirs": rep.EmptyDirs, "expired": rep.Expired, "conflicts": rep.Conflicts,
			"v2_index": int64(rep.VerifiedIndex),
		},
		Checksum: rep.Checksum,
		Report:   rep,
	}
}

func bucketsResult(rep BucketsReport) Result {
	sort.Strings(rep.Published)
	return Result{
		Counts: map[string]int64{"published": int64(len(rep.Published)), "changed": rep.Changed, "invalid": int64(len(rep.Invalid))},
		Report: rep,
	}
}

// String summarises a bucket report in one line.
func (r BucketsReport) String() string {
	return fmt.Sprintf("%d published buckets, %d documents changed, %d not valid JSON", len(r.Published), r.Changed, len(r.Invalid))
}
