package sidecar

import (
	"context"
	"fmt"
	"sync"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/gateway"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/upgrade"
)

// Options is the whole sidecar: every module, with cfg supplied. Tests
// and the demo add fx.Replace/fx.Decorate or extra hooks on top.
func Options(cfg Config, lg *zap.Logger) fx.Option {
	opts := []fx.Option{
		fx.Supply(cfg),
		fx.Supply(lg),
		fx.WithLogger(func(lg *zap.Logger) fxevent.Logger {
			return &fxevent.ZapLogger{Logger: atLeast(lg.Named("fx"), zapcore.WarnLevel)}
		}),
		ClientModule,
		HooksModule,
		StepsModule,
		AgentModule,
		RecoverModule,
		MetricsModule,
	}
	if cfg.Embed != nil {
		opts = append(opts, EmbedModule)
	}
	return fx.Options(opts...)
}

// New returns the sidecar app.
func New(cfg Config, lg *zap.Logger, extra ...fx.Option) *fx.App {
	return fx.New(append([]fx.Option{Options(cfg, lg)}, extra...)...)
}

// EmbedModule runs an etcd member in the process. A fatal error of the
// member stops the app: a sidecar without its etcd must not pretend.
var EmbedModule = fx.Module("embed",
	fx.Provide(newMember),
)

// Member is the embedded member, available once the app has started.
type Member struct {
	mu sync.Mutex
	m  *embed.Member
}

// Get returns the running member, or nil before start.
func (m *Member) Get() *embed.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}

func newMember(lc fx.Lifecycle, cfg Config, lg *zap.Logger, sd fx.Shutdowner) *Member {
	holder := &Member{}
	stop := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			ecfg := *cfg.Embed
			if ecfg.Logger == nil {
				ecfg.Logger = lg
			}
			m, err := embed.Start(ctx, ecfg)
			if err != nil {
				return err
			}
			holder.mu.Lock()
			holder.m = m
			holder.mu.Unlock()
			lg.Info("embedded etcd member serving", zap.String("name", m.Name()), zap.String("client", m.ClientURL()))
			go func() {
				select {
				case err := <-m.Err():
					lg.Error("embedded etcd failed; stopping the sidecar", zap.Error(err))
					_ = sd.Shutdown(fx.ExitCode(1))
				case <-stop:
				}
			}()
			return nil
		},
		OnStop: func(context.Context) error {
			close(stop)
			if m := holder.Get(); m != nil {
				m.Close()
			}
			return nil
		},
	})
	return holder
}

// ClientModule provides the v3 and v2 clients of the configured etcd.
// Neither talks to etcd before the app starts: the v2 client never dials
// ahead, and the v3 client is a handle (clientv3.NewCtxClient) that OnStart
// connects, after the embedded member's start when there is one. Keep it in
// a constructor; use it from OnStart or a hook's Run.
var ClientModule = fx.Module("etcd-client",
	fx.Provide(newClients),
)

type clientParams struct {
	fx.In
	LC     fx.Lifecycle
	Cfg    Config
	Lg     *zap.Logger
	Member *Member `optional:"true"` // started first when present
}

type clientResult struct {
	fx.Out
	V3   *clientv3.Client
	V2   clientv2.Client
	Keys clientv2.KeysAPI
}

func newClients(p clientParams) (clientResult, error) {
	cc := p.Cfg.Conn
	cc.Endpoints = p.Cfg.Endpoints()
	cc.Logger = atLeast(p.Lg.Named("etcd-client"), zapcore.ErrorLevel)
	v2, err := conn.V2(cc)
	if err != nil {
		return clientResult{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	v3 := clientv3.NewCtxClient(ctx, clientv3.WithZapLogger(cc.Logger))
	var dialed *clientv3.Client
	p.LC.Append(fx.Hook{
		// Dialed with the module's ctx, not OnStart's: the client lives
		// until OnStop.
		OnStart: func(context.Context) error {
			c, err := conn.NewV3(ctx, cc)
			if err != nil {
				cancel()
				return err
			}
			dialed = c
			v3.Cluster, v3.KV, v3.Lease, v3.Watcher, v3.Auth, v3.Maintenance = c.Cluster, c.KV, c.Lease, c.Watcher, c.Auth, c.Maintenance
			return nil
		},
		OnStop: func(context.Context) error {
			dialed.Close()
			cancel()
			conn.CloseIdleV2()
			return nil
		},
	})
	return clientResult{V3: v3, V2: v2, Keys: conn.NewKeysAPI(v2)}, nil
}

// AgentModule runs the upgrade agent: membership, election, control key,
// the steps of this node.
var AgentModule = fx.Module("agent",
	fx.Provide(newAgent),
	fx.Invoke(func(*upgrade.Sidecar) {}),
)

type agentParams struct {
	fx.In
	LC       fx.Lifecycle
	Cfg      Config
	Lg       *zap.Logger
	Cli      *clientv3.Client
	Keys2    clientv2.KeysAPI
	Registry *hooks.Registry
	Metrics  *Metrics
}

func newAgent(p agentParams) (*upgrade.Sidecar, error) {
	// The storage is checked once, at start, and published with the member
	// key: the master's preflight reads it before the fence.
	ready := upgrade.CheckStorage(p.Cfg.Node, p.Cfg.NodelocalRoot, p.Cfg.LocalRoot, p.Cfg.SkipSteps)
	gwPrefix := p.Cfg.GWPrefix
	if gwPrefix == "" {
		gwPrefix = gateway.DefaultPrefix
	}
	sc, err := upgrade.New(p.Cli, p.Registry, upgrade.Config{
		Node: p.Cfg.Node, Keys: p.Cfg.Keys, SessionTTL: p.Cfg.SessionTTL,
		FlushInterval: p.Cfg.FlushInterval, Attempts: p.Cfg.Attempts, RetryBackoff: p.Cfg.RetryBackoff,
		Member: upgrade.MemberInfo{Version: p.Cfg.Version, NodelocalRoot: p.Cfg.NodelocalRoot, LocalRoot: p.Cfg.LocalRoot, Ready: &ready},
		Logger: p.Lg.Named("upgrade"), Observer: p.Metrics,
		Checks: []upgrade.Check{upgrade.EtcdCheck(p.Cli, p.Cfg.Endpoints(), p.Keys2), upgrade.GatewayCheck(p.Keys2, gwPrefix), upgrade.MoveCheck(p.Cli, p.Keys2, gwPrefix)},
	})
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	p.LC.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() { defer close(done); _ = sc.Run(ctx) }()
			return nil
		},
		// Stopping cancels the steps, which stop after their current batch,
		// and waits for them within fx's stop timeout.
		OnStop: func(stopCtx context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-stopCtx.Done():
				return fmt.Errorf("sidecar: agent did not stop in time: %w", stopCtx.Err())
			}
		},
	})
	return sc, nil
}

// atLeast raises lg's level to lvl; a logger already above it stays as it
// is (zap complains on stderr about a level it cannot lower to).
func atLeast(lg *zap.Logger, lvl zapcore.Level) *zap.Logger {
	if lg.Core().Enabled(lvl - 1) {
		return lg.WithOptions(zap.IncreaseLevel(lvl))
	}
	return lg
}
