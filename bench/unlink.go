package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rokup/rokup/gc"
)

// DefaultUnlinkProbe bounds the files the removal ceiling creates and
// times: enough for a steady rate (seconds on a disk that discards every
// freed block), few enough to create in seconds.
const DefaultUnlinkProbe = 50000

// unlinkCeiling measures what no collector can beat on this disk: how
// fast its file system removes files like the ones gc just collected
// (their mean size), as many at once as a GC run's writers. Each collected
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
	body := make([]byte, size)
	for i := range body {
		body[i] = 'x'
	}
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

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, gc.DefaultInFlight)
	start := time.Now()
	for w := 0; w < gc.DefaultInFlight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := os.Remove(paths[i]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.Items, p.Seconds = int64(n), took.Seconds()
	p.Setting = fmt.Sprintf("%d at once", gc.DefaultInFlight)
	p.Note = fmt.Sprintf("%d files of %d bytes (the mean of those gc collected) removed from the storage's file system", n, size)
	return nil
}
