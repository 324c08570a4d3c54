package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rokup/rokup/internal/backoff"
)

// The control key's actions and modes (docs/design.md#control-protocol).
const (
	ActionUpgrade = "upgrade"
	ActionAbort   = "abort"
	ActionTask    = "task"

	ModeNodelocal = "nodelocal"
	ModeLocal     = "local"
)

// MaxRequestBytes bounds a control value. A real request is a few hundred
// bytes; anything larger is a mistake and is rejected before decoding.
const MaxRequestBytes = 64 << 10

// ErrInvalidRequest wraps every reason a control value is rejected.
var ErrInvalidRequest = errors.New("invalid control request")

// Request is what an operator writes to the control key.
type Request struct {
	ID         string          `json:"id"`
	Action     string          `json:"action"`
	Mode       string          `json:"mode,omitempty"`
	Nodes      []string        `json:"nodes,omitempty"`
	Precollect bool            `json:"precollect,omitempty"`
	Republish  bool            `json:"republish,omitempty"`
	Hook       string          `json:"hook,omitempty"` // action task
	Args       json.RawMessage `json:"args,omitempty"` // action task
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether s may name a run or a node: it becomes part of
// etcd keys, so no slashes and nothing exotic.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// DecodeRequest decodes a control value strictly: unknown fields, trailing
// data, a wrong action or mode, a bad id or node name are all errors
// wrapping ErrInvalidRequest. Mode defaults to nodelocal for an upgrade.
// Whether the named nodes and hook exist is checked by the caller, which
// knows the cluster.
func DecodeRequest(value []byte) (Request, error) {
	var r Request
	if len(value) > MaxRequestBytes {
		return r, fmt.Errorf("%w: %d bytes, more than the %d a request may have", ErrInvalidRequest, len(value), MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: not a JSON request object: %v", ErrInvalidRequest, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidRequest)
	}
	if r.ID == "" {
		return r, fmt.Errorf("%w: \"id\" is empty", ErrInvalidRequest)
	}
	if !ValidName(r.ID) {
		return r, fmt.Errorf("%w: id %q must be 1-128 letters, digits, '.', '_' or '-'", ErrInvalidRequest, r.ID)
	}
	seen := map[string]bool{}
	for _, n := range r.Nodes {
		if !ValidName(n) {
			return r, fmt.Errorf("%w: node name %q is not valid", ErrInvalidRequest, n)
		}
		if seen[n] {
			return r, fmt.Errorf("%w: node %q named twice", ErrInvalidRequest, n)
		}
		seen[n] = true
	}
	switch r.Action {
	case ActionUpgrade:
		if r.Mode == "" {
			r.Mode = ModeNodelocal
		}
		if r.Mode != ModeNodelocal && r.Mode != ModeLocal {
			return r, fmt.Errorf("%w: mode %q is not %q or %q", ErrInvalidRequest, r.Mode, ModeNodelocal, ModeLocal)
		}
		if r.Mode == ModeLocal && len(r.Nodes) > 1 {
			return r, fmt.Errorf("%w: local mode runs on one node, %d named", ErrInvalidRequest, len(r.Nodes))
		}
		if r.Hook != "" || len(r.Args) > 0 {
			return r, fmt.Errorf("%w: \"hook\" and \"args\" go with action %q only", ErrInvalidRequest, ActionTask)
		}
	case ActionTask:
		if r.Hook == "" {
			return r, fmt.Errorf("%w: action task needs \"hook\"", ErrInvalidRequest)
		}
		if r.Mode != "" || r.Precollect || r.Republish {
			return r, fmt.Errorf("%w: mode, precollect and republish go with action %q only", ErrInvalidRequest, ActionUpgrade)
		}
	case ActionAbort:
		if r.Mode != "" || len(r.Nodes) > 0 || r.Precollect || r.Republish || r.Hook != "" || len(r.Args) > 0 {
			return r, fmt.Errorf("%w: action abort takes only \"id\"", ErrInvalidRequest)
		}
	case "":
		return r, fmt.Errorf("%w: \"action\" is missing (one of upgrade, abort, task)", ErrInvalidRequest)
	default:
		return r, fmt.Errorf("%w: action %q is not one of upgrade, abort, task", ErrInvalidRequest, r.Action)
	}
	return r, nil
}

// controlEvent is one state of the control key.
type controlEvent struct {
	Value   []byte
	Rev     int64 // the key's mod revision; 0 when the key is absent
	Deleted bool
}

// watchControl delivers the control key's current state first, then every
// change, until ctx ends. It survives a broken watch (etcd restarted, the
// revision compacted) by reading the key again and watching from there, so
// a change is never missed, though an intermediate one may be folded into
// the next: callers act on the latest value, which is what an operator
// means. The channel is closed when ctx ends.
func watchControl(ctx context.Context, cli *clientv3.Client, key string, lg *zap.Logger) <-chan controlEvent {
	out := make(chan controlEvent, 1)
	go func() {
		defer close(out)
		var retry backoff.Backoff
		for ctx.Err() == nil {
			resp, err := cli.Get(ctx, key)
			if err != nil {
				lg.Warn("read control key", zap.String("key", key), zap.Error(err))
				retry.Wait(ctx)
				continue
			}
			retry.Reset()
			ev := controlEvent{Deleted: true}
			if len(resp.Kvs) == 1 {
				ev = controlEvent{Value: resp.Kvs[0].Value, Rev: resp.Kvs[0].ModRevision}
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
			wch := cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(resp.Header.Revision+1))
			for wr := range wch {
				if wr.Err() != nil {
					lg.Warn("control key watch broke; re-reading", zap.Error(wr.Err()))
					break
				}
				for _, e := range wr.Events {
					ev := controlEvent{Value: e.Kv.Value, Rev: e.Kv.ModRevision}
					if e.Type == clientv3.EventTypeDelete {
						ev = controlEvent{Deleted: true, Rev: e.Kv.ModRevision}
					}
					select {
					case out <- ev:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return out
}
