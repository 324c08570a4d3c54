package rehearse

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/libmap"
)

// ErrWorkDir is returned for a work directory that cannot hold the copy.
var ErrWorkDir = errors.New("rehearse: bad work directory")

// Options say what to rehearse and where.
type Options struct {
	// DataDir is a copy of one member's data directory (etcd 3.4 or
	// 3.5), or the output of ETCDCTL_API=2 etcdctl backup. Only read.
	DataDir string
	// WorkDir receives the copy (WorkDir/data); default a new temporary
	// directory. It must not lie in DataDir.
	WorkDir string
	// Keep leaves the copy in place after the rehearsal.
	Keep bool
	// GWPrefix is the Gateway's prefix (default /rok/gw); V2Epochs the
	// stale epoch cache (default /epochs).
	GWPrefix string
	V2Epochs string
	// RunID names the rehearsed run; its fence holder is upgrade/<RunID>.
	// Default "rehearsal".
	RunID string
	// Logger receives the embedded etcd's warnings; default none.
	Logger *zap.Logger
	// Progress, if set, receives each step's progress.
	Progress func(step string, done, total int64)
	// Live, instead of DataDir, reads the store from a live cluster into
	// a new embedded member; the live cluster is only read.
	Live *Live
}

// rehearsal is one Run's state.
type rehearsal struct {
	opts Options
	c    *copyMember
	r    *Report
	// migrateSecs is gw-migrate's time as the real run would take it:
	// without the attempts the rehearsal made to pass a problem.
	migrateSecs float64
}

// Run rehearses the etcd side of the upgrade on a copy of opts.DataDir and
// returns its report; Report.OK tells whether the real run would succeed.
// An error means the rehearsal itself could not be made (a directory that
// is not a data directory, or is in use, a copy that etcd cannot serve);
// the report then holds what was learnt so far. Cancelling ctx stops the
// running step after its current batch; the copy is removed all the same.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.GWPrefix = "/" + trimSlashes(orDefault(opts.GWPrefix, gateway.DefaultPrefix))
	opts.V2Epochs = orDefault(opts.V2Epochs, libmap.DefaultV2Dir)
	opts.RunID = orDefault(opts.RunID, "rehearsal")
	x := &rehearsal{opts: opts, r: &Report{DataDir: opts.DataDir, GWPrefix: opts.GWPrefix, Kept: opts.Keep, Problems: []Problem{}}}
	switch {
	case opts.Live != nil && opts.DataDir != "":
		return x.r, errors.New("rehearse: a data directory or a live cluster, not both")
	case opts.Live == nil:
		if err := CheckDataDir(opts.DataDir); err != nil {
			return x.r, err
		}
	}
	work, cleanup, err := workDir(opts)
	if err != nil {
		return x.r, err
	}
	x.r.WorkDir = work
	if !opts.Keep {
		defer cleanup()
	}
	data := filepath.Join(work, "data")
	if opts.Live == nil {
		t0 := time.Now()
		files, n, err := copyDataDir(opts.DataDir, data)
		x.r.CopiedFiles, x.r.CopiedBytes, x.r.CopySeconds = int64(files), n, time.Since(t0).Seconds()
		if err != nil {
			return x.r, err
		}
		if x.c, err = serve(ctx, data, true, opts.Logger); err != nil {
			return x.r, err
		}
	} else {
		if x.c, err = serve(ctx, data, false, opts.Logger); err != nil {
			return x.r, err
		}
	}
	defer x.c.close()
	if opts.Live != nil {
		if err := x.importLive(ctx); err != nil {
			return x.r, err
		}
		if err := x.c.mark(ctx); err != nil {
			return x.r, err
		}
	}
	x.r.Etcd, x.r.V2Index, x.r.V3Revision = x.c.version, x.c.index, x.c.rev
	if err := x.preflight(ctx); err != nil {
		return x.r, err
	}
	if err := x.steps(ctx); err != nil {
		return x.r, err
	}
	x.r.OK = len(x.r.Problems) == 0
	return x.r, nil
}

// workDir makes the directory the copy goes to and returns the function
// that removes what the rehearsal put there.
func workDir(opts Options) (string, func(), error) {
	if opts.WorkDir == "" {
		dir, err := os.MkdirTemp("", "rokup-rehearse-")
		if err != nil {
			return "", nil, fmt.Errorf("rehearse: work directory: %w", err)
		}
		return dir, func() { os.RemoveAll(dir) }, nil
	}
	dir := opts.WorkDir
	if opts.DataDir != "" && within(dir, opts.DataDir) {
		return "", nil, fmt.Errorf("%w: %s lies in the data directory %s, which a rehearsal never writes", ErrWorkDir, dir, opts.DataDir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("rehearse: work directory: %w", err)
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Lstat(data); err == nil {
		return "", nil, fmt.Errorf("%w: %s already exists (an earlier rehearsal kept with --keep?); remove it or choose another --work-dir", ErrWorkDir, data)
	}
	return dir, func() { os.RemoveAll(data) }, nil
}

func (x *rehearsal) problem(p Problem) { x.r.Problems = append(x.r.Problems, p) }

func (x *rehearsal) note(format string, args ...any) {
	x.r.Notes = append(x.r.Notes, fmt.Sprintf(format, args...))
}

func (x *rehearsal) hasProblem(check string) bool {
	for _, p := range x.r.Problems {
		if p.Check == check {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func trimSlashes(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
