package composer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rokup/rokup/libmap"
)

// The steps of Put, in order, as its step hook names them.
const (
	StepTouch  = "touch"  // look the object up in the epoch cache
	StepWrite  = "write"  // write the file under a temporary name
	StepRename = "rename" // rename it into place
	StepStamp  = "stamp"  // stamp the object
)

// PutOption configures Put.
type PutOption func(*putConfig)

type putConfig struct{ before func(step string) }

// BeforeStep has Put call f before each of its steps (StepTouch, StepWrite,
// StepRename, StepStamp): tests use it to interleave a composer with a GC
// step by step.
func BeforeStep(f func(step string)) PutOption {
	return func(c *putConfig) { c.before = f }
}

// Put stores one object the way Rok's composer does. It is this project's
// model of the composer, and the contract the GC is safe against without
// asking anything more of composers:
//
//  1. touch the object's epoch key (libmap.Cache.Touch). "Exists" means
//     the object is on storage and now carries the current epoch: the
//     composer relies on the file and writes nothing (Put returns true);
//  2. on "missing", write the file under a temporary name in its folder,
//     synced, and rename it into place, so that no reader ever sees half a
//     file (a rename replaces whatever is there);
//  3. then stamp the object (libmap.Cache.Stamp).
//
// The file is in place before its epoch key is written, so a composer never
// makes an epoch key without its file; only a collector could. Put writes
// data, which for the content-addressed scopes is what name is the hash of.
func Put(ctx context.Context, cache *libmap.Cache, l Layout, scope libmap.Scope, node, name string, data []byte, opts ...PutOption) (existed bool, err error) {
	var c putConfig
	for _, o := range opts {
		o(&c)
	}
	step := func(s string) {
		if c.before != nil {
			c.before(s)
		}
	}
	if !ValidName(scope, name) {
		return false, fmt.Errorf("composer: put %s/%s: not a valid name", scope, name)
	}
	step(StepTouch)
	exists, err := cache.Touch(ctx, scope, node, name)
	if err != nil {
		return false, fmt.Errorf("composer: put %s/%s: %w", scope, name, err)
	}
	if exists {
		return true, nil
	}
	path := l.Path(scope, name)
	step(StepWrite)
	tmp, err := writeTemp(path, data)
	if err != nil {
		return false, fmt.Errorf("composer: put %s/%s: %w", scope, name, err)
	}
	step(StepRename)
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("composer: put %s/%s: %w", scope, name, err)
	}
	step(StepStamp)
	if _, err := cache.Stamp(ctx, scope, node, name); err != nil {
		return false, fmt.Errorf("composer: put %s/%s: %w", scope, name, err)
	}
	return false, nil
}

// writeTemp writes data to a new file beside path, named as a file in
// progress (the scanner never stamps nor collects it), and syncs it.
func writeTemp(path string, data []byte) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-"+hex.EncodeToString(r[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}
