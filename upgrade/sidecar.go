package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/internal/backoff"
)

// Config configures one node's sidecar.
type Config struct {
	Node string
	Keys Keys
	// SessionTTL is the lease of the node's session in seconds: how long a
	// dead or paused master keeps leadership before another takes over.
	SessionTTL int
	// FlushInterval throttles how often progress is persisted.
	FlushInterval time.Duration
	// Attempts is how many times a failing step is tried before the run
	// fails; hooks are idempotent, so a retry after a transient error (etcd
	// briefly unavailable) is safe.
	Attempts     int
	RetryBackoff time.Duration
	// Member is published under members/<node> while the sidecar lives.
	Member MemberInfo
	Logger *zap.Logger
	// Observer, if set, sees leadership and progress (metrics).
	Observer Observer
	// Checks are the preflight's cluster-wide checks beyond what the v3
	// client shows (the Gateway's liveness keys, the v2 API).
	Checks []Check
}

// MemberInfo is what a live sidecar publishes about itself.
type MemberInfo struct {
	Node          string    `json:"node"`
	Version       string    `json:"version"`
	NodelocalRoot string    `json:"nodelocal_root,omitempty"`
	LocalRoot     string    `json:"local_root,omitempty"`
	Started       time.Time `json:"started"`
	// Ready is what the sidecar found checking its storage at start; nil
	// when it did not check (then the preflight takes it as ready).
	Ready *Readiness `json:"ready,omitempty"`
}

// Observer receives events for metrics. Methods must not block.
type Observer interface {
	Leader(bool)
	StepProgress(run string, s Step)
	// RunState is every run's state as this sidecar last read it.
	RunState(run, state string)
}

type nopObserver struct{}

func (nopObserver) Leader(bool)               {}
func (nopObserver) StepProgress(string, Step) {}
func (nopObserver) RunState(string, string)   {}

func (c *Config) defaults() {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 5
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = 500 * time.Millisecond
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	c.Member.Node = c.Node
}

// Sidecar is one node's upgrade agent: it campaigns for leadership, leads
// runs when elected, and always works the steps handed to its node.
type Sidecar struct {
	cfg   Config
	cli   *clientv3.Client
	reg   *hooks.Registry
	store *Store
	lg    *zap.Logger

	mu     sync.Mutex
	leader bool
}

// New returns a sidecar; Run starts it.
func New(cli *clientv3.Client, reg *hooks.Registry, cfg Config) (*Sidecar, error) {
	cfg.defaults()
	if !ValidName(cfg.Node) {
		return nil, fmt.Errorf("upgrade: node name %q is not valid (letters, digits, '.', '_', '-')", cfg.Node)
	}
	return &Sidecar{cfg: cfg, cli: cli, reg: reg, store: NewStore(cli, cfg.Keys),
		lg: cfg.Logger.With(zap.String("node", cfg.Node))}, nil
}

// Store gives read access to runs.
func (s *Sidecar) Store() *Store { return s.store }

// IsLeader reports whether this sidecar leads right now.
func (s *Sidecar) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

func (s *Sidecar) setLeader(v bool) {
	s.mu.Lock()
	s.leader = v
	s.mu.Unlock()
	s.cfg.Observer.Leader(v)
}

// Run works until ctx ends: the node's steps in one goroutine, and in a
// loop, a session, membership, and a campaign that leads when won. etcd
// errors are retried with backoff; Run returns only when ctx ends.
func (s *Sidecar) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.work(ctx) }()
	retry := backoff.Backoff{First: s.cfg.RetryBackoff, Max: 10 * time.Second}
	for ctx.Err() == nil {
		err := s.session(ctx)
		if ctx.Err() != nil {
			break
		}
		s.lg.Warn("session ended; starting a new one", zap.Error(err), zap.Duration("after", retry.Delay()))
		retry.Wait(ctx)
	}
	wg.Wait()
	return nil
}

// session holds one etcd session: membership and campaigns under its lease.
func (s *Sidecar) session(ctx context.Context) error {
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(s.cfg.SessionTTL), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	defer sess.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-sctx.Done():
		}
	}()
	if err := s.register(sctx, sess.Lease()); err != nil {
		return err
	}
	for sctx.Err() == nil {
		// Campaign hands out a term only after checking it is still ours
		// (etcd's "phantom leadership"); its guard fences every write.
		el, guard, err := fencing.Campaign(sctx, sess, s.cfg.Keys.Election(), s.cfg.Node)
		if err != nil {
			return fmt.Errorf("campaign: %w", err)
		}
		s.lg.Info("elected master", zap.String("key", guard.Key), zap.Int64("rev", guard.Rev))
		s.setLeader(true)
		err = s.lead(sctx, guard)
		s.setLeader(false)
		if sctx.Err() != nil {
			return fmt.Errorf("leadership ended: session lost")
		}
		s.lg.Warn("stopped leading; resigning", zap.Error(err))
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = el.Resign(rctx)
		rcancel()
		backoff.Sleep(sctx, s.cfg.RetryBackoff)
	}
	return sctx.Err()
}

func (s *Sidecar) register(ctx context.Context, lease clientv3.LeaseID) error {
	info := s.cfg.Member
	info.Started = time.Now().UTC()
	b, _ := json.Marshal(info)
	known := s.cfg.Keys.Known() + s.cfg.Node
	_, err := s.cli.Txn(ctx).Then(
		clientv3.OpPut(s.cfg.Keys.Member(s.cfg.Node), string(b), clientv3.WithLease(lease)),
		clientv3.OpPut(known, string(b)),
	).Commit()
	if err != nil {
		return fmt.Errorf("register member %s: %w", s.cfg.Node, err)
	}
	return nil
}

// LiveMembers lists the nodes whose sidecar holds a session now.
func LiveMembers(ctx context.Context, cli *clientv3.Client, keys Keys) ([]string, error) {
	return listNames(ctx, cli, keys.Members())
}

// KnownNodes lists every node that ever ran a sidecar.
func KnownNodes(ctx context.Context, cli *clientv3.Client, keys Keys) ([]string, error) {
	return listNames(ctx, cli, keys.Known())
}

func listNames(ctx context.Context, cli *clientv3.Client, prefix string) ([]string, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	names := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		names = append(names, string(kv.Key)[len(prefix):])
	}
	sort.Strings(names)
	return names, nil
}

// transient reports whether a step's error is worth another attempt.
func transient(err error) bool {
	return !errors.Is(err, hooks.ErrUnknownHook) && !errors.Is(err, ErrInvalidRequest)
}
