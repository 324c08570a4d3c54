package composer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/libmap"
)

// MaxSamples bounds the bad entries and missing chocks a report lists by
// path; the counts are always complete.
const MaxSamples = 50

// UpdateConfig tunes Update.
type UpdateConfig struct {
	// Node qualifies the ids of nodelocal scopes (required for them).
	Node string
	// Guard goes into every write (master-only stamping of the CA scopes).
	Guard fencing.Guard
	// InFlight is how many transactions run at once; default
	// libmap.DefaultStampInFlight.
	InFlight int
	// NoTotal skips the quick counting pass, run beside the stamping,
	// that gives progress a total.
	NoTotal bool
	// CheckRefs reads every map file as the update goes: a malformed map
	// is skipped (BadMap) and each reference to a chock missing from
	// storage is reported. Without it a map, like a chock, is stamped once
	// its name is valid and it can be read (access(2)), which is what
	// SPEC §4 asks of a stamp and how the GC's sweep classifies maps too;
	// reading the maps and looking up their chocks was 15 % of the update's
	// time at 1M objects (lab store, 2026-12-02: 8.8 s → 7.7 s). The dry
	// run always reads them: the preflight is where an operator learns of
	// malformed maps and missing chocks, and the GC's mark reads every
	// root it follows.
	CheckRefs bool
	// DryRun scans and classifies as the update would, and writes nothing:
	// no epoch is read or stamped (cache may be nil). The report's rate is
	// the scan's, so an operator can predict each node's update.
	DryRun bool
	// OnProgress gets entries done (stamped, found stamped, or skipped) of
	// total (0 when unknown). Calls are serialised.
	OnProgress func(done, total int64)
}

// BadSample is one invalid entry, for a report.
type BadSample struct {
	Path   string `json:"path"`
	Reason Reason `json:"reason"`
	Error  string `json:"error,omitempty"`
}

// Report is what an epoch update of one scope did.
type Report struct {
	Scope          libmap.Scope     `json:"scope"`
	Node           string           `json:"node,omitempty"`
	Dir            string           `json:"dir"`
	Epoch          uint64           `json:"epoch"`
	Objects        int64            `json:"objects"` // valid objects found
	Stamped        int64            `json:"stamped"`
	AlreadyStamped int64            `json:"already_stamped"`
	Skipped        int64            `json:"skipped"` // invalid entries, never stamped
	SkippedBy      map[Reason]int64 `json:"skipped_by_reason"`
	Unreadable     int64            `json:"unreadable"`
	MissingChocks  int64            `json:"missing_chocks"` // references to chocks not on storage
	BadSamples     []BadSample      `json:"bad,omitempty"`
	MissingSamples []string         `json:"missing,omitempty"` // "map → chock"
	DryRun         bool             `json:"dry_run,omitempty"` // counted and classified; nothing stamped
	Note           string           `json:"note,omitempty"`
	// Start is when the scope's scan began, so that the time of scopes
	// stamped at once can be told apart (their Seconds overlap).
	Start     time.Time `json:"-"`
	Seconds   float64   `json:"seconds"`
	PerSecond float64   `json:"objects_per_s"`
}

// UpdateScopes is the epoch update of several scopes of one layout at
// once, as `epoch-update maps-uuid chocks-idx` and the plan's stamping
// steps ask: each scope has its own scan and stamper, all running
// together, so that one scope's file reads (a map is read whole) overlap
// another's etcd writes instead of waiting for them. Every root is checked
// before anything starts. cfg applies to each scope; its OnProgress gets
// the entries done over every scope, of their total (0 until the count
// running beside the stamping has it; none with cfg.NoTotal). Each
// report's Seconds is its own scope's time, which overlaps the others'.
//
// The first scope to fail stops the others (after their transactions in
// flight); its error is returned with every scope's report so far, in the
// order of scopes.
func UpdateScopes(ctx context.Context, cache *libmap.Cache, l Layout, scopes []libmap.Scope, cfg UpdateConfig) ([]Report, error) {
	for _, sc := range scopes {
		if err := CheckRoot(l.Root(sc)); err != nil {
			return nil, fmt.Errorf("%s: %w", sc, err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu        sync.Mutex
		done      = make([]int64, len(scopes))
		total     int64 // 0 until counted
		first     error // the first scope's own failure
		cancelled error // a scope stopped by that failure, or by the caller
		wg        sync.WaitGroup
	)
	counted := make(chan struct{})
	if cfg.NoTotal || cfg.DryRun {
		close(counted)
	} else {
		// The count runs beside the stamping rather than before it: the
		// total is for progress alone, and a million objects took it a
		// quarter of a second of listing that the stamping waited out.
		// Progress has no total until it is known; a count cut short
		// (the stamping ended first, or failed) gives none.
		go func() {
			defer close(counted)
			var n int64
			for _, sc := range scopes {
				c, err := countScope(l, ctx, sc)
				if err != nil {
					return
				}
				n += c
			}
			mu.Lock()
			defer mu.Unlock()
			total = n
		}()
	}
	reps := make([]Report, len(scopes))
	for i, sc := range scopes {
		one := cfg
		one.NoTotal = true
		one.OnProgress = func(d, _ int64) {
			mu.Lock()
			defer mu.Unlock()
			done[i] = d
			if cfg.OnProgress != nil {
				var sum int64
				for _, n := range done {
					sum += n
				}
				cfg.OnProgress(sum, total)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := Update(ctx, cache, l, sc, one)
			mu.Lock()
			defer mu.Unlock()
			reps[i] = rep
			switch {
			case err == nil:
			case ctx.Err() != nil && errors.Is(err, context.Canceled):
				if cancelled == nil {
					cancelled = err
				}
			case first == nil:
				first = err
				cancel()
			}
		}()
	}
	wg.Wait()
	cancel() // a count still going is of no use now
	<-counted
	if first != nil {
		return reps, first
	}
	return reps, cancelled
}

// countScope is Layout.Count, a variable so that a test can hold the
// count back.
var countScope = Layout.Count

// Update stamps every valid object of scope found in the layout with the
// current epoch, and accounts for everything else found there. Invalid
// entries are counted and never stamped; an unreadable folder or file is
// reported (Report.Unreadable) and the rest is still stamped, so callers
// decide whether that fails the run. An absent scope folder means nothing
// to stamp (Report.Note says so). Re-running is harmless and cheap: objects
// already holding the epoch are read, not written.
//
// Cancelling ctx stops after the transactions in flight and returns ctx's
// error with the report so far.
func Update(ctx context.Context, cache *libmap.Cache, l Layout, scope libmap.Scope, cfg UpdateConfig) (Report, error) {
	start := time.Now()
	rep := Report{Scope: scope, Dir: l.Dir(scope), SkippedBy: map[Reason]int64{}, Start: start}
	if scope.Nodelocal() {
		rep.Node = cfg.Node
	}
	if err := CheckRoot(l.Root(scope)); err != nil {
		return rep, fmt.Errorf("%s: %w", scope, err)
	}
	if cfg.DryRun {
		return dryRun(ctx, l, scope, cfg, rep, start)
	}
	if !cfg.NoTotal {
		// UpdateScopes counts the total beside the stamping and stamps
		// through here, without a count of its own.
		reps, err := UpdateScopes(ctx, cache, l, []libmap.Scope{scope}, cfg)
		if len(reps) == 0 {
			return rep, err
		}
		return reps[0], err
	}

	var mu sync.Mutex
	var stampDone, skipped int64
	progress := func() {
		if cfg.OnProgress != nil {
			cfg.OnProgress(stampDone+skipped, 0)
		}
	}
	st, err := cache.NewStamper(ctx, scope, cfg.Node, libmap.StampConfig{
		Guard:    cfg.Guard,
		InFlight: cfg.InFlight,
		OnProgress: func(done int64) {
			mu.Lock()
			stampDone = done
			progress()
			mu.Unlock()
		},
	})
	if err != nil {
		return rep, fmt.Errorf("stamp %s: %w", scope, err)
	}
	rep.Epoch = st.Epoch()

	var opts []ScanOption
	if !cfg.CheckRefs {
		opts = append(opts, WithoutRefs())
	}
	var tally Tally
	scanErr := l.Scan(ctx, scope, func(e Entry) error {
		tally.Add(e)
		rep.sample(e)
		if !e.Valid() {
			mu.Lock()
			skipped++
			progress()
			mu.Unlock()
			return nil
		}
		return st.Add(e.Name)
	}, opts...)
	stats, stampErr := st.Close()
	if errors.Is(scanErr, ErrNoScopeDir) {
		rep.Note = "no " + string(scope) + " folder: nothing to stamp"
		scanErr = nil
	}

	rep.tally(tally, start)
	rep.Stamped, rep.AlreadyStamped = stats.Stamped, stats.AlreadyStamped
	if rep.Seconds > 0 {
		rep.PerSecond = float64(rep.Stamped+rep.AlreadyStamped) / rep.Seconds
	}
	// The stamper's error explains a failed Add, so it comes first.
	if stampErr != nil {
		return rep, fmt.Errorf("stamp %s: %w", scope, stampErr)
	}
	if scanErr != nil {
		return rep, fmt.Errorf("scan %s: %w", rep.Dir, scanErr)
	}
	return rep, nil
}

// dryRun is Update's scan without the stamper: what would be stamped, what
// would be skipped and why, and how fast this storage scans.
func dryRun(ctx context.Context, l Layout, scope libmap.Scope, cfg UpdateConfig, rep Report, start time.Time) (Report, error) {
	rep.DryRun = true
	var tally Tally
	var n int64
	err := l.Scan(ctx, scope, func(e Entry) error {
		tally.Add(e)
		rep.sample(e)
		if n++; cfg.OnProgress != nil && n%1000 == 0 {
			cfg.OnProgress(n, 0)
		}
		return nil
	})
	if errors.Is(err, ErrNoScopeDir) {
		rep.Note = "no " + string(scope) + " folder: nothing to stamp"
		err = nil
	}
	rep.tally(tally, start)
	if rep.Seconds > 0 {
		rep.PerSecond = float64(rep.Objects) / rep.Seconds
	}
	if err != nil {
		return rep, fmt.Errorf("scan %s: %w", rep.Dir, err)
	}
	return rep, nil
}

// sample keeps the first bad entries and missing chocks for the report.
func (rep *Report) sample(e Entry) {
	if !e.Valid() {
		if len(rep.BadSamples) < MaxSamples {
			s := BadSample{Path: e.Path, Reason: e.Bad}
			if e.Err != nil {
				s.Error = e.Err.Error()
			}
			rep.BadSamples = append(rep.BadSamples, s)
		}
		return
	}
	for _, m := range e.Missing {
		if len(rep.MissingSamples) < MaxSamples {
			rep.MissingSamples = append(rep.MissingSamples, e.Path+" → "+m.String())
		}
	}
}

// tally fills the report's counts from what the scan found.
func (rep *Report) tally(t Tally, start time.Time) {
	rep.Objects = t.Objects
	rep.Skipped = t.SkippedTotal()
	for r, n := range t.Skipped {
		rep.SkippedBy[r] = n
	}
	rep.Unreadable = t.Skipped[Unreadable]
	rep.MissingChocks = t.MissingRefs
	rep.Seconds = time.Since(start).Seconds()
}
