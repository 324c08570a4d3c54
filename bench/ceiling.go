package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rokup/rokup/batch"
)

// setting is one batch shape the ceiling tries.
type setting struct{ ops, inFlight int }

func (s setting) String() string { return fmt.Sprintf("%d ops × %d in flight", s.ops, s.inFlight) }

// settings are the shapes tried: etcd's default --max-txn-ops is 128, so
// fewer ops per request are the only other direction.
var settings = []setting{{128, 4}, {128, 8}, {128, 16}, {128, 32}, {64, 16}}

// ceiling measures batched transactional puts of n keys of keyLen bytes
// with values of valLen bytes: each setting on a slice of n, then the best
// on all of n. The keys are deleted (and compacted) after each try.
func (r *runner) ceiling(ctx context.Context, name string, n int64, keyLen, valLen int) error {
	prefix := r.env.keys.Scratch + "/ceiling"
	// The tries pick the setting: a snapshot in one of them would pick
	// wrong (measure keeps it out of the full run).
	if err := r.clearSnapshot(ctx); err != nil {
		return err
	}
	best, bestRate := settings[0], 0.0
	tune := min(n, int64(r.cfg.TuneItems))
	var tried []string
	for _, s := range settings {
		took, err := putKeys(ctx, r, name+" try "+s.String(), prefix, tune, keyLen, valLen, s)
		if err != nil {
			return fmt.Errorf("bench: %s with %s: %w", name, s, err)
		}
		rate := float64(tune) / took.Seconds()
		if rate > bestRate {
			best, bestRate = s, rate
		}
		tried = append(tried, fmt.Sprintf("%d×%d %.0f/s", s.ops, s.inFlight, rate))
		if err := r.dropScratch(ctx, prefix); err != nil {
			return err
		}
	}
	err := r.measure(name, func(p *Path) error {
		took, err := putKeys(ctx, r, name, prefix, n, keyLen, valLen, best)
		p.Items, p.Seconds = n, took.Seconds()
		return err
	})
	if err != nil {
		return err
	}
	p := &r.res.Paths[len(r.res.Paths)-1]
	p.Setting = best.String()
	p.Note = fmt.Sprintf("%d B keys, %d B values; best of %d settings tried on %d keys (%s)", keyLen, valLen, len(settings), tune, strings.Join(tried, ", "))
	return r.dropScratch(ctx, prefix)
}

// putKeys writes n keys of keyLen bytes (at least the prefix and a
// counter) with valLen-byte values through a batch.Writer.
func putKeys(ctx context.Context, r *runner, stage, prefix string, n int64, keyLen, valLen int, s setting) (time.Duration, error) {
	value := strings.Repeat("v", valLen)
	pad := keyLen - len(prefix) - 1 - len(strconv.FormatInt(n, 10))
	head := prefix + "/" + strings.Repeat("0", max(0, pad))
	width := len(strconv.FormatInt(n, 10))
	start := time.Now()
	var done atomic.Int64
	w := batch.New(ctx, r.env.cli, batch.Config{MaxOps: s.ops, InFlight: s.inFlight,
		OnCommit: func(items, _ int) { r.cfg.Progress(stage, done.Add(int64(items)), n) }})
	buf := make([]byte, 0, keyLen+8)
	for i := int64(0); i < n; i++ {
		buf = append(buf[:0], head...)
		num := strconv.FormatInt(i, 10)
		for j := len(num); j < width; j++ {
			buf = append(buf, '0')
		}
		buf = append(buf, num...)
		if err := w.Add(batch.Put(string(buf), value)); err != nil {
			w.Close()
			return 0, err
		}
	}
	err := w.Close()
	return time.Since(start), err
}
