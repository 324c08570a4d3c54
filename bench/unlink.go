package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/rokup/rokup/gc"
)

// DefaultUnlinkProbe bounds the files the removal ceiling creates and
// times: enough for a steady rate (seconds on a disk that discards every
// freed block), few enough to create in seconds.
const DefaultUnlinkProbe = 50000

// unlinkCeiling measures what no collector can beat on this disk: how
// fast its file system removes files like the ones gc just collected
// (their mean size), as many at once as a GC run's removers. Each collected
// object is one file removed, and a removal's cost lies in the kernel, in
// freeing the file's blocks: on ext4 mounted with "discard" each freed
// block is a discard request to the device at the journal's next commit,
// and removals wait for those commits. The files are made in 256 folders
// under the bench's temp dir (the storage's file system) and synced
// before the clock starts, so that their blocks are allocated; only the
// removal is timed.
func (r *runner) unlinkCeiling(ctx context.Context, p *Path, n int, size int64) error {
	dir := filepath.Join(r.env.dir, "unlink-probe")
	defer os.RemoveAll(dir)
	paths := make([]string, n)
	body := bytes.Repeat([]byte("x"), int(size))
	for i := range paths {
		sub := filepath.Join(dir, fmt.Sprintf("%02x", i%256))
		if i < 256 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
		}
		paths[i] = filepath.Join(sub, fmt.Sprintf("%064x", i))
		if err := os.WriteFile(paths[i], body, 0o644); err != nil {
			return err
		}
		if i%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			r.cfg.Progress(CeilingUnlnk+" create", int64(i), int64(n))
		}
	}
	unix.Sync() // blocks allocated and on disk: what a collector finds

	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	cpu, start := r.cpuMark(), time.Now()
	for range gc.Removers {
		g.Go(func() error {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := gctx.Err(); err != nil {
					return err
				}
				if err := os.Remove(paths[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	took := time.Since(start)
	p.CPU = r.cpuSince(cpu, took) // the removal's alone, not the files' making
	p.Items, p.Seconds = int64(n), took.Seconds()
	p.Setting = fmt.Sprintf("%d at once", gc.Removers)
	p.Note = fmt.Sprintf("%d files of %d bytes (the mean of those gc collected) removed from the storage's file system", n, size)
	return nil
}
