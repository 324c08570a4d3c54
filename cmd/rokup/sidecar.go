package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/sidecar"
	"github.com/rokup/rokup/upgrade"
)

func newSidecarCmd(f *cli.Flags) *cobra.Command {
	var (
		useEmbed   bool
		ecfg       embed.Config
		etls       embed.TLS
		ptls       embed.TLS
		sessionTTL int
		metrics    string
		logLevel   string
		skipSteps  string
	)
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Run the upgrade sidecar beside the Rok daemons (optionally with an embedded etcd member)",
		Long: `The sidecar registers this node, campaigns to be the upgrade master, and
watches the control key (/rok/upgrade/control). When an operator writes an
upgrade request (rokup start, or any etcd client), the master runs the
cluster-wide steps and every node stamps its own storage. Stop it with
SIGTERM: the current batch finishes and the step resumes on restart.

At start it checks its storage roots (each exists, is readable and holds
its scope folders) and publishes what it can run with its member key; the
master's preflight rejects a run that needs a step a node cannot run. A
sidecar that can run no storage step refuses to start unless --skip-steps
names the steps it will not run.

With --embed it also runs an etcd member (v2 API enabled) in this process;
--embed-cluster makes it one member of a cluster.`,
		Example: `  rokup sidecar --node node-1 --endpoints http://etcd:2379 \
      --nodelocal-root /var/lib/rok/nodelocal --local-root /var/lib/rok/local
  rokup sidecar --node node-1 --embed --data-dir /var/lib/rokup/etcd \
      --embed-cluster node-1=https://10.0.0.1:2380,node-2=https://10.0.0.2:2380,node-3=https://10.0.0.3:2380 \
      --embed-peer-url https://10.0.0.1:2380 --embed-peer-cert peer.pem --embed-peer-key peer-key.pem \
      --embed-peer-trusted-ca ca.pem --embed-peer-client-cert-auth --nodelocal-root /var/lib/rok/nodelocal --local-root /var/lib/rok/local
  rokup sidecar --node etcd-only --embed --data-dir /var/lib/rokup/etcd \
      --skip-steps gc-precollect,gc-precollect-ca,epochs-nodelocal,epochs-ca,epochs-all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !upgrade.ValidName(f.Node) {
				return cli.Usagef("--node %q is not a valid node name (letters, digits, '.', '_', '-')", f.Node)
			}
			skips := splitList(skipSteps)
			if err := upgrade.CheckSkips(skips); err != nil {
				return cli.Usagef("--skip-steps: %v", err)
			}
			if f.NodelocalRoot != "" {
				// The root remembers its node: another node's is refused.
				if err := composer.ClaimRoot(f.NodelocalRoot, f.Node); errors.Is(err, composer.ErrOtherNode) {
					return &cli.UsageError{Err: err}
				}
			}
			ready := upgrade.CheckStorage(f.Node, f.NodelocalRoot, f.LocalRoot, skips)
			if err := servable(f.Node, ready); err != nil {
				return err
			}
			lg, err := newLogger(logLevel)
			if err != nil {
				return cli.Usagef("--log-level: %v", err)
			}
			defer lg.Sync()
			cfg := sidecar.Config{
				Node: f.Node, Version: Version, GWPrefix: f.GWPrefix,
				NodelocalRoot: f.NodelocalRoot, LocalRoot: f.LocalRoot, SkipSteps: skips,
				Keys: upgrade.DefaultKeys, SessionTTL: sessionTTL, MetricsAddr: metrics,
			}
			cfg.Conn = f.Conn()
			if useEmbed {
				if ecfg.DataDir == "" {
					return cli.Usagef("--embed needs --data-dir")
				}
				if etls.CertFile != "" || etls.KeyFile != "" {
					ecfg.TLS = &etls
				}
				if ptls.CertFile != "" || ptls.KeyFile != "" || ptls.TrustedCAFile != "" || ptls.ClientCertAuth {
					if ptls.CertFile == "" || ptls.KeyFile == "" {
						return cli.Usagef("--embed-peer-cert and --embed-peer-key go together (and the peer TLS flags need both)")
					}
					ecfg.PeerTLS = &ptls
					if !cmd.Flags().Changed("embed-peer-url") {
						ecfg.PeerURL = "" // https://127.0.0.1:2380
					}
				}
				ecfg.Logger = lg
				c := ecfg
				cfg.Embed = &c
				if !cmd.Flags().Changed("endpoints") && os.Getenv("ROK_ETCD_ENDPOINTS") == "" {
					cfg.Conn.Endpoints = nil // the embedded member's own URL
				}
			}
			return runSidecar(cmd.Context(), cfg, lg)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&useEmbed, "embed", false, "run an embedded etcd member in this process")
	fl.StringVar(&ecfg.DataDir, "data-dir", "", "embedded etcd data dir")
	fl.StringVar(&ecfg.Name, "embed-name", "default", "embedded member's name")
	fl.StringVar(&ecfg.ClientURL, "embed-client-url", "", "embedded member's client URL (default "+embed.DefaultClientURL+")")
	fl.StringVar(&ecfg.PeerURL, "embed-peer-url", embed.DefaultPeerURL, "embedded member's peer URL")
	fl.StringVar(&ecfg.InitialCluster, "embed-cluster", "", "initial cluster name=peerURL,… to be one member of a cluster")
	fl.BoolVar(&ecfg.Existing, "embed-existing", false, "join an existing cluster instead of bootstrapping one")
	fl.StringVar(&etls.CertFile, "embed-cert", "", "embedded member's server certificate (enables TLS)")
	fl.StringVar(&etls.KeyFile, "embed-key", "", "embedded member's server key")
	fl.StringVar(&etls.TrustedCAFile, "embed-trusted-ca", "", "CA that signs client certificates")
	fl.BoolVar(&etls.ClientCertAuth, "embed-client-cert-auth", false, "require client certificates")
	fl.StringVar(&ptls.CertFile, "embed-peer-cert", "", "embedded member's peer certificate: raft traffic over TLS (the peer URLs are then https)")
	fl.StringVar(&ptls.KeyFile, "embed-peer-key", "", "embedded member's peer key")
	fl.StringVar(&ptls.TrustedCAFile, "embed-peer-trusted-ca", "", "CA that signs the peers' certificates; peers without one are refused")
	fl.BoolVar(&ptls.ClientCertAuth, "embed-peer-client-cert-auth", false, "require a certificate of --embed-peer-trusted-ca from every peer (etcd does once the CA is given)")
	fl.IntVar(&sessionTTL, "session-ttl", 5, "seconds a silent master keeps leadership before another takes over")
	fl.StringVar(&metrics, "listen-metrics", "", "serve /metrics and /healthz here, e.g. 127.0.0.1:9479 (default off)")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cli.Uses(cmd, cli.ConnFlags, cli.StorageFlags, cli.Flag(cli.GWPrefixFlag))
	fl.StringVar(&skipSteps, "skip-steps", "", "steps this node will not run, comma-separated (e.g. epochs-nodelocal on a node without storage); runs that need them here are rejected before the fence")
	return cmd
}

// servable refuses a sidecar that can run none of the storage steps it was
// not told to skip: its roots are missing or wrong, and every run would be
// refused because of it. A sidecar that can run some of them starts, says
// on stderr what it cannot run, and publishes it; the master's preflight
// rejects the runs that need those steps here.
func servable(node string, r upgrade.Readiness) error {
	unserved := r.Unserved()
	if len(unserved) == 0 {
		return nil
	}
	var lines []string
	for _, step := range []string{upgrade.StepNodelocal, upgrade.StepCA, upgrade.StepAll, upgrade.StepPrecollect, upgrade.StepPrecollectCA} {
		if why, ok := unserved[step]; ok {
			lines = append(lines, fmt.Sprintf("  %-17s %s", step, why))
		}
	}
	msg := fmt.Sprintf("node %s cannot run these steps:\n%s", node, strings.Join(lines, "\n"))
	if len(r.Serves) == 0 {
		return fmt.Errorf("%s\ngive the storage roots (--nodelocal-root, --local-root), or name the steps this node will not run with --skip-steps %s", msg, strings.Join(sortedKeys(unserved), ","))
	}
	fmt.Fprintf(os.Stderr, "rokup sidecar: warning: %s\nruns that need them on this node are rejected before the fence (--skip-steps to say so and silence this)\n", msg)
	return nil
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	return zc.Build()
}

// runSidecar starts the app and runs it until SIGINT/SIGTERM or until a
// module (the embedded etcd) shuts it down.
func runSidecar(ctx context.Context, cfg sidecar.Config, lg *zap.Logger) error {
	app := sidecar.New(cfg, lg)
	if err := app.Err(); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := app.Start(sctx); err != nil {
		return fmt.Errorf("sidecar: start: %w", err)
	}
	fmt.Fprintf(os.Stderr, "rokup sidecar: node %s serving (etcd %v)\n", cfg.Node, cfg.Endpoints())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	code := 0
	select {
	case s := <-sig:
		lg.Info("stopping on signal", zap.String("signal", s.String()))
	case d := <-app.Wait():
		code = d.ExitCode
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		return fmt.Errorf("sidecar: stop: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("sidecar stopped: a module failed (see the log)")
	}
	fmt.Fprintln(os.Stderr, "rokup sidecar: stopped cleanly")
	return nil
}
