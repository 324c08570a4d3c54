package gateway

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RevertReport is what RevertMove deleted.
type RevertReport struct {
	Deleted int64 `json:"deleted"` // keys the move had created
	Kept    int64 `json:"kept"`    // listed keys re-created by someone else since; left alone
	Markers int64 `json:"markers"`
}

// RevertMove deletes exactly the keys Move created: each of the move's
// transactions wrote a marker listing the keys it created, at the
// revision that created them. A key whose create revision still equals its
// marker's revision is deleted, with the marker, in one transaction; so a
// revert interrupted at any point resumes from the markers left. Keys
// that existed before the move (identical or overwritten) are never listed.
func RevertMove(ctx context.Context, cli *clientv3.Client, opts MoveOptions) (RevertReport, error) {
	var rep RevertReport
	mp := movedPrefix(cleanPrefix(opts.Prefix))
	end := clientv3.GetPrefixRangeEnd(mp)
	var done int64
	for {
		resp, err := cli.Get(ctx, mp, clientv3.WithRange(end), clientv3.WithLimit(64))
		if err != nil {
			return rep, fmt.Errorf("gateway: revert: read markers: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return rep, nil
		}
		for _, mk := range resp.Kvs {
			var mark marker
			if err := json.Unmarshal(mk.Value, &mark); err != nil {
				return rep, fmt.Errorf("gateway: revert: unreadable marker %s: %w", mk.Key, err)
			}
			if err := revertMarker(ctx, cli, opts, string(mk.Key), mk.ModRevision, mark, &rep); err != nil {
				return rep, err
			}
			rep.Markers++
			done += int64(len(mark.Keys))
			if opts.Progress != nil {
				opts.Progress(Progress{Phase: "revert", Done: done})
			}
		}
	}
}

func revertMarker(ctx context.Context, cli *clientv3.Client, opts MoveOptions, mk string, rev int64, mark marker, rep *RevertReport) error {
	for attempt := 0; attempt < 5; attempt++ {
		gets := make([]clientv3.Op, len(mark.Keys))
		for i, k := range mark.Keys {
			gets[i] = clientv3.OpGet(k, clientv3.WithKeysOnly())
		}
		rr, err := cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return fmt.Errorf("gateway: revert: read %s: %w", mark.Keys[0], err)
		}
		cmps := append(opts.Guard.Cmps(), clientv3.Compare(clientv3.ModRevision(mk), "=", rev))
		var ops []clientv3.Op
		var kept int64
		for i, k := range mark.Keys {
			kvs := rr.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				continue // expired or deleted since
			}
			if kvs[0].CreateRevision != rev {
				kept++
				continue
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision))
			ops = append(ops, clientv3.OpDelete(k))
		}
		ops = append(ops, clientv3.OpDelete(mk))
		resp, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return fmt.Errorf("gateway: revert: delete keys of %s: %w", mk, err)
		}
		if resp.Succeeded {
			rep.Deleted += int64(len(ops) - 1)
			rep.Kept += kept
			return nil
		}
		if err := opts.Guard.Check(ctx, cli); err != nil {
			return err
		}
	}
	return fmt.Errorf("gateway: revert: keys of %s keep changing; stop other writers and re-run", mk)
}
