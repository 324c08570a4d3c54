package fencing

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultInstancePrefix is where GC instances register
// (docs/design.md#gc-instances).
const DefaultInstancePrefix = "/rok/gc/instances/"

// caInstance is the node name under which the CA sweep registers: the CA
// storage is shared by every node, so there is one CA instance cluster-wide
// (key /rok/gc/instances/_ca) and two CA sweeps never run at once. Node
// names starting with "_" are therefore reserved.
const caInstance = "_ca"

// instanceTTL is the lease TTL of an instance, in seconds: how long a
// crashed GC keeps its node's slot.
const instanceTTL = 15

// instanceInfo is the value of an instance key: who runs it.
type instanceInfo struct {
	Node  string    `json:"node"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

// Instance is a registered GC instance: a key bound to a lease that exists
// while the GC runs. Its Cmp goes into every deletion the GC makes, so a GC
// whose lease expired (it was paused, or partitioned) deletes nothing more.
type Instance struct {
	cli     *clientv3.Client
	key     string
	rev     int64
	lease   clientv3.LeaseID
	session *concurrency.Session
}

// InstanceOption configures Register.
type InstanceOption func(*instanceConfig)

type instanceConfig struct {
	prefix string
	fence  *Fence
}

// WithInstancePrefix registers under prefix instead of DefaultInstancePrefix.
func WithInstancePrefix(prefix string) InstanceOption {
	return func(c *instanceConfig) { c.prefix = prefix }
}

// WithInstanceFence checks f instead of the fence at DefaultFenceKey.
func WithInstanceFence(f *Fence) InstanceOption { return func(c *instanceConfig) { c.fence = f } }

// Register registers the GC instance of node in one transaction that also
// checks the fence is absent and no instance of node exists. A set fence is
// an error wrapping ErrFenced naming its holder; a running instance is an
// error wrapping ErrInstanceRunning. Cancelling ctx abandons registration;
// the instance, once registered, lives until Close or its lease expires.
func Register(ctx context.Context, cli *clientv3.Client, node string, opts ...InstanceOption) (*Instance, error) {
	if err := validNode(node); err != nil {
		return nil, err
	}
	return register(ctx, cli, node, opts)
}

// RegisterCA registers the cluster-wide CA sweep instance (key
// <prefix>_ca).
func RegisterCA(ctx context.Context, cli *clientv3.Client, opts ...InstanceOption) (*Instance, error) {
	return register(ctx, cli, caInstance, opts)
}

func validNode(node string) error {
	switch {
	case node == "":
		return fmt.Errorf("fencing: a node name is required")
	case strings.Contains(node, "/"):
		return fmt.Errorf("fencing: node name %q must not contain '/'", node)
	case strings.HasPrefix(node, "_"):
		return fmt.Errorf("fencing: node name %q: names starting with '_' are reserved (%s is the CA sweep)", node, caInstance)
	}
	return nil
}

func register(ctx context.Context, cli *clientv3.Client, node string, opts []InstanceOption) (*Instance, error) {
	c := instanceConfig{prefix: DefaultInstancePrefix}
	for _, o := range opts {
		o(&c)
	}
	if c.fence == nil {
		c.fence = NewFence(cli)
	}
	host, _ := os.Hostname()
	in := &Instance{cli: cli, key: c.prefix + node}
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(instanceTTL))
	if err != nil {
		return nil, fmt.Errorf("fencing: lease for GC instance %s: %w", in.key, err)
	}
	in.session, in.lease = s, s.Lease()
	val, _ := json.Marshal(instanceInfo{Node: node, Host: host, PID: os.Getpid(), Since: time.Now().UTC().Truncate(time.Second)})
	for {
		resp, err := cli.Txn(ctx).
			If(c.fence.AbsentCmp(), clientv3.Compare(clientv3.CreateRevision(in.key), "=", 0)).
			Then(clientv3.OpPut(in.key, string(val), clientv3.WithLease(in.lease))).
			Else(clientv3.OpGet(c.fence.Key()), clientv3.OpGet(in.key)).
			Commit()
		if err != nil {
			in.closeSession()
			return nil, fmt.Errorf("fencing: register GC instance %s: %w", in.key, err)
		}
		if resp.Succeeded {
			in.rev = resp.Header.Revision
			return in, nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			in.closeSession()
			h := decodeHolding(kvs[0].Value)
			h.Rev = kvs[0].CreateRevision
			return nil, fencedError(h)
		}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			in.closeSession()
			var other instanceInfo
			_ = json.Unmarshal(kvs[0].Value, &other)
			return nil, fmt.Errorf("%w: %s (host %q, pid %d, since %s)", ErrInstanceRunning, in.key,
				other.Host, other.PID, other.Since.Format(time.RFC3339))
		}
		// The fence or the other instance vanished between the two reads.
	}
}

// Lease is the lease the instance key is bound to.
func (in *Instance) Lease() clientv3.LeaseID { return in.lease }

// Cmp is true while the instance key is the one Register created,
// unchanged: it fails once the lease expired or the key was removed.
func (in *Instance) Cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(in.key), "=", in.rev)
}

// Check returns an error wrapping ErrInstanceLost when the instance key is
// no longer the one Register created.
func (in *Instance) Check(ctx context.Context) error {
	resp, err := in.cli.Get(ctx, in.key)
	if err != nil {
		return fmt.Errorf("fencing: check GC instance %s: %w", in.key, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].ModRevision != in.rev {
		return fmt.Errorf("%w: %s@%d", ErrInstanceLost, in.key, in.rev)
	}
	return nil
}

// Close removes the instance key if it is still this instance's, and
// revokes the lease Register created. Closing twice is harmless.
func (in *Instance) Close(ctx context.Context) error {
	_, err := in.cli.Txn(ctx).If(in.Cmp()).Then(clientv3.OpDelete(in.key)).Commit()
	in.closeSession()
	if err != nil {
		return fmt.Errorf("fencing: unregister GC instance %s: %w", in.key, err)
	}
	return nil
}

func (in *Instance) closeSession() { in.session.Close() }
