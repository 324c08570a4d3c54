package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/seed"
)

// embeddedQuota leaves the embedded member room for a million-object run
// with its ceilings (the keys they write are deleted and compacted, but
// bbolt keeps its pages).
const embeddedQuota = 8 << 30

// Keys is where a run writes. On the embedded member the real paths use the
// default keys (docs/design.md#keys); on an existing cluster everything
// lives under one scratch prefix.
type Keys struct {
	GW          string // Gateway documents, v2 and v3
	V2Epochs    string // the stale v2 epoch cache
	EpochPrefix string // v3 epoch keys
	EpochKey    string // the current epoch
	Fence       string
	Instances   string // GC instance registrations
	Scratch     string // ceilings and naive paths; v3 only
}

func defaultKeys() Keys {
	return Keys{
		GW: gateway.DefaultPrefix, V2Epochs: libmap.DefaultV2Dir,
		EpochPrefix: libmap.DefaultPrefix, EpochKey: libmap.DefaultEpochKey,
		Fence: fencing.DefaultFenceKey, Instances: fencing.DefaultInstancePrefix,
		Scratch: "/rokup-bench",
	}
}

// scratchKeys puts every key of a run under root.
func scratchKeys(root string) Keys {
	return Keys{
		GW: root + gateway.DefaultPrefix, V2Epochs: root + libmap.DefaultV2Dir,
		EpochPrefix: root + libmap.DefaultPrefix, EpochKey: root + libmap.DefaultEpochKey,
		Fence: root + fencing.DefaultFenceKey, Instances: root + fencing.DefaultInstancePrefix,
		Scratch: root + "/scratch",
	}
}

type env struct {
	cli     *clientv3.Client
	v2      clientv2.KeysAPI
	keys    Keys
	root    string // v2 and v3 prefix removed at the end (existing cluster)
	dir     string // temp dir: storage, and the embedded member's data
	storage seed.Layout
	desc    string
	fsync   string
	member  *member
	log     func(string)
}

// open starts the embedded member or connects to the given cluster.
func open(ctx context.Context, cfg Config) (e *env, err error) {
	dir, err := os.MkdirTemp(cfg.Dir, "rokup-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e = &env{dir: dir, storage: seed.Layout{Dir: filepath.Join(dir, "storage")}, log: cfg.Log}
	defer func() {
		if err != nil {
			e.close(context.WithoutCancel(ctx))
		}
	}()
	cc := conn.Config{DialTimeout: 5 * time.Second}
	if cfg.Etcd != nil && len(cfg.Etcd.Endpoints) > 0 {
		cc = *cfg.Etcd
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return e, err
		}
		e.root = "/rokup-bench/" + hex.EncodeToString(b[:])
		e.keys = scratchKeys(e.root)
		e.desc = "etcd at " + strings.Join(cc.Endpoints, ",") + " under " + e.root
		e.fsync = "as the cluster is configured"
	} else {
		where := "in this process (memory columns include etcd's)"
		if len(cfg.MemberCommand) > 0 {
			where = "in a child process (memory columns are rokup's alone)"
		}
		cfg.Log("starting an embedded etcd member (fsync on) " + where + " in " + dir)
		e.member, err = startMember(ctx, dir, cfg.MemberCommand)
		if err != nil {
			return e, err
		}
		cc.Endpoints = e.member.urls
		e.keys = defaultKeys()
		e.desc = "embedded etcd 3.5, one member " + where + ", in " + dir
		e.fsync = "on"
	}
	if e.cli, err = conn.V3(ctx, cc); err != nil {
		return e, err
	}
	v2c, err := conn.V2(cc)
	if err != nil {
		return e, err
	}
	e.v2 = conn.NewKeysAPI(v2c)
	return e, nil
}

// close removes what the run wrote: the scratch prefix in both stores of
// an existing cluster, the temp dir, the embedded member.
func (e *env) close(ctx context.Context) {
	if e.cli != nil {
		if e.root != "" {
			// A page of keys per request: 10M epoch keys take minutes.
			ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			deletePrefix(ctx, e.cli, e.root+"/", dropPage)
			e.v2.Delete(ctx, e.root, &clientv2.DeleteOptions{Recursive: true, Dir: true})
			// v2 keeps the parent directory; remove it unless another
			// run is using it (a non-recursive delete fails then).
			e.v2.Delete(ctx, path.Dir(e.root), &clientv2.DeleteOptions{Dir: true})
			cancel()
		}
		e.cli.Close()
	}
	if e.member != nil {
		e.member.close()
	}
	e.log("removing " + e.dir)
	os.RemoveAll(e.dir)
}
