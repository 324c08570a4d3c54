package gateway

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
)

// RevertReport is what RevertMove deleted and what it left alone.
type RevertReport struct {
	Deleted int64 `json:"deleted"` // keys the move had created
	// Kept counts the keys the move created that were changed in v3 since
	// (to other bytes than v2's); CreatedAfter the keys created under the
	// prefix after the move (Gateway 0.14's own). Both are left alone;
	// KeptKeys lists the first of either.
	Kept         int64    `json:"kept"`
	CreatedAfter int64    `json:"created_after"`
	KeptKeys     []string `json:"kept_keys,omitempty"`
	// LegacyMarkers counts an older rokup's bookkeeping keys converted and
	// deleted on the way.
	LegacyMarkers int64 `json:"legacy_markers,omitempty"`
}

// RevertMove deletes exactly the documents Move created. The move's state
// key holds the v3 revisions its runs wrote in; a key under the prefix
// whose create revision falls in one was created by the move. It is
// deleted when unchanged since (its mod revision is its create revision),
// or when changed back to its v2 bytes (reverting the published-bucket
// marking does that); otherwise Gateway 0.14 changed it, and it is kept
// and listed, as are the keys created after the move. Keys that existed
// before the move (identical, or overwritten with --overwrite) are never
// deleted.
//
// Each deletion compares the mod revision it judged, so a key changed
// meanwhile is judged again. The state key is marked reverting first and
// deleted last: a revert interrupted at any point resumes from it, and
// an interrupted move is reverted the same way (its open run ends where
// the revert begins). An older rokup's markers are converted first.
func RevertMove(ctx context.Context, cli *clientv3.Client, v2 clientv2.KeysAPI, opts MoveOptions) (RevertReport, error) {
	var rep RevertReport
	opts.Prefix = cleanPrefix(opts.Prefix)
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = 128
	}
	ss := newStateStore(cli, opts)
	var err error
	if rep.LegacyMarkers, err = ss.adoptMarkers(ctx); err != nil {
		return rep, err
	}
	st, _, err := ss.update(ctx, func(st *moveState, modRev, rev int64) *moveState {
		if st == nil || st.Reverting {
			return nil
		}
		st.closeRun(modRev, rev) // a move killed mid-copy wrote nothing after now
		st.Reverting = true
		return st
	})
	if err != nil || st == nil {
		return rep, err // nil: nothing moved (or faked), nothing to delete
	}
	r := &reverter{cli: cli, v2: v2, opts: opts, st: st, rep: &rep}
	if err := r.run(ctx); err != nil {
		return rep, err
	}
	now, modRev, _, err := ss.get(ctx)
	if err != nil || now == nil {
		return rep, err
	}
	if !now.Reverting {
		return rep, fmt.Errorf("gateway: revert: a move began while reverting (state %s); run the revert again once it ends", ss.key)
	}
	return rep, ss.remove(ctx, modRev)
}

type reverter struct {
	cli  *clientv3.Client
	v2   clientv2.KeysAPI
	opts MoveOptions
	st   *moveState
	rep  *RevertReport
	done int64
}

// run pages through the keys under the prefix and deletes the move's.
func (r *reverter) run(ctx context.Context) error {
	prefix := r.opts.Prefix + "/"
	p := conn.NewPager(r.cli, prefix, clientv3.GetPrefixRangeEnd(prefix), 512, clientv3.WithKeysOnly())
	for attempt := 0; p.More(); {
		kvs, err := p.Next(ctx)
		if err != nil {
			return fmt.Errorf("gateway: revert: read v3 under %s: %w", r.opts.Prefix, err)
		}
		ok, err := r.page(ctx, kvs)
		if err != nil {
			return err
		}
		if !ok { // a key changed since it was read: read the page again
			p.Again()
			if attempt++; attempt >= 5 {
				return fmt.Errorf("gateway: revert: keys near %s keep changing; stop every writer of the Gateway store and re-run", kvs[0].Key)
			}
		}
	}
	return nil
}

// page judges one page of keys and deletes the move's; false when a
// deletion's compare failed.
func (r *reverter) page(ctx context.Context, kvs []*mvccpb.KeyValue) (bool, error) {
	var last int64
	for _, x := range r.st.Runs {
		last = max(last, x.To)
	}
	ledger := ledgerDir(r.opts.Prefix)
	var del []*mvccpb.KeyValue
	for _, kv := range kvs {
		k := string(kv.Key)
		switch {
		case r.st.has(kv.CreateRevision) && kv.ModRevision == kv.CreateRevision:
			del = append(del, kv)
		case r.st.has(kv.CreateRevision):
			same, cur, err := r.asInV2(ctx, k)
			if err != nil {
				return false, err
			}
			if cur == nil {
				continue // deleted meanwhile
			}
			if same {
				del = append(del, cur)
				continue
			}
			r.keep(k, &r.rep.Kept)
		case kv.CreateRevision > last && !strings.HasPrefix(k, ledger):
			r.keep(k, &r.rep.CreatedAfter) // the ledger's own entries are the recorder's
		}
	}
	n := max(r.opts.MaxTxnOps-len(r.opts.Guard.Cmps()), 1)
	for i := 0; i < len(del); i += n {
		chunk := del[i:min(i+n, len(del))]
		cmps := r.opts.Guard.Cmps()
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, kv := range chunk {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
		resp, err := r.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return false, fmt.Errorf("gateway: revert: delete %s: %w", chunk[0].Key, err)
		}
		if !resp.Succeeded {
			if err := r.opts.Guard.Check(ctx, r.cli); err != nil {
				return false, err
			}
			return false, nil
		}
		r.rep.Deleted += int64(len(chunk))
		r.done += int64(len(chunk))
		if r.opts.Progress != nil {
			r.opts.Progress(Progress{Phase: "revert", Done: r.done})
		}
	}
	return true, nil
}

// asInV2 reads a key the move created and someone changed since, and
// reports whether it holds its v2 document's bytes again, with the
// revisions it was judged at.
func (r *reverter) asInV2(ctx context.Context, k string) (bool, *mvccpb.KeyValue, error) {
	resp, err := r.cli.Get(ctx, k)
	if err != nil {
		return false, nil, fmt.Errorf("gateway: revert: read v3 %s: %w", k, err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil, nil
	}
	if r.v2 == nil {
		return false, resp.Kvs[0], nil
	}
	doc, err := r.v2.Get(ctx, k, &clientv2.GetOptions{Quorum: true})
	if clientv2.IsKeyNotFound(err) {
		return false, resp.Kvs[0], nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("gateway: revert: read v2 %s: %w", k, conn.V2Error(err))
	}
	return !doc.Node.Dir && doc.Node.Value == string(resp.Kvs[0].Value), resp.Kvs[0], nil
}

func (r *reverter) keep(k string, n *int64) {
	*n++
	if len(r.rep.KeptKeys) < listMax {
		r.rep.KeptKeys = append(r.rep.KeptKeys, k)
	}
}

// movePending reports whether a run of the move, or of its revert, was
// interrupted: its state key says so, or, with nothing recorded, an older
// rokup's markers are there.
func movePending(ctx context.Context, cli *clientv3.Client, opts MoveOptions, recorded bool) (bool, error) {
	ss := newStateStore(cli, opts)
	st, _, _, err := ss.get(ctx)
	if err != nil || st != nil {
		return err == nil && (st.open() || st.Reverting), err
	}
	if recorded {
		return false, nil
	}
	resp, err := cli.Get(ctx, legacyMarkers(ss.prefix), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("gateway: read the legacy markers: %w", err)
	}
	return resp.Count > 0, nil
}
