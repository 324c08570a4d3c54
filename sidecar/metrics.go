package sidecar

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/rokup/rokup/upgrade"
)

// Metrics are the sidecar's Prometheus metrics, in a registry of its own
// (several sidecars share one process in the demo and the tests).
type Metrics struct {
	Registry *prometheus.Registry
	leader   prometheus.Gauge
	done     *prometheus.GaugeVec
	total    *prometheus.GaugeVec
	errors   *prometheus.GaugeVec
	skipped  *prometheus.GaugeVec
	rate     *prometheus.GaugeVec
	runState *prometheus.GaugeVec
}

// runStates are the values of rokup_run_state's state label.
var runStates = []string{upgrade.StatePending, upgrade.StateRunning, upgrade.StateDone, upgrade.StateFailed, upgrade.StateAborted, upgrade.StateRejected}

func newMetrics(cfg Config) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "rokup_is_leader",
			Help: "1 while this sidecar is the elected upgrade master.", ConstLabels: prometheus.Labels{"node": cfg.Node}}),
		done: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rokup_step_done_items",
			Help: "Items a step has done on this node.", ConstLabels: prometheus.Labels{"node": cfg.Node}}, []string{"run", "step"}),
		total: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rokup_step_total_items",
			Help: "Items a step has in all (0 while unknown).", ConstLabels: prometheus.Labels{"node": cfg.Node}}, []string{"run", "step"}),
		errors: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rokup_step_errors",
			Help: "Items a step failed on (hooks that do not tell skipped items apart count them here too).", ConstLabels: prometheus.Labels{"node": cfg.Node}}, []string{"run", "step"}),
		skipped: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rokup_step_skipped_items",
			Help: "Items a step left alone on purpose (bad entries on storage): not an error.", ConstLabels: prometheus.Labels{"node": cfg.Node}}, []string{"run", "step"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rokup_step_items_per_second",
			Help: "A step's average rate in its current attempt.", ConstLabels: prometheus.Labels{"node": cfg.Node}}, []string{"run", "step"}),
		runState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rokup_run_state",
			Help: "1 for the state each upgrade run is in, 0 for the others (alert on state=\"failed\").", ConstLabels: prometheus.Labels{"node": cfg.Node}}, []string{"run", "state"}),
	}
	m.Registry.MustRegister(m.leader, m.done, m.total, m.errors, m.skipped, m.rate, m.runState,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Leader implements upgrade.Observer.
func (m *Metrics) Leader(v bool) {
	if v {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// RunState implements upgrade.Observer.
func (m *Metrics) RunState(run, state string) {
	for _, s := range runStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.runState.WithLabelValues(run, s).Set(v)
	}
}

// StepProgress implements upgrade.Observer.
func (m *Metrics) StepProgress(run string, s upgrade.Step) {
	m.done.WithLabelValues(run, s.Name).Set(float64(s.Done))
	m.total.WithLabelValues(run, s.Name).Set(float64(s.Total))
	m.errors.WithLabelValues(run, s.Name).Set(float64(s.Errors))
	m.skipped.WithLabelValues(run, s.Name).Set(float64(s.Skipped))
	m.rate.WithLabelValues(run, s.Name).Set(s.PerSecond)
}

// MetricsModule provides Metrics and, when configured, serves /metrics and
// /healthz (200 when etcd answers a read).
var MetricsModule = fx.Module("metrics",
	fx.Provide(newMetrics),
	fx.Invoke(serveMetrics),
)

func serveMetrics(lc fx.Lifecycle, cfg Config, m *Metrics, cli *clientv3.Client, lg *zap.Logger) {
	if cfg.MetricsAddr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := cli.Get(ctx, "/rok/ping", clientv3.WithCountOnly()); err != nil {
			http.Error(w, "etcd: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	srv := &http.Server{Addr: cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			ln, err := net.Listen("tcp", cfg.MetricsAddr)
			if err != nil {
				return err
			}
			lg.Info("metrics serving", zap.String("addr", ln.Addr().String()))
			go func() {
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					lg.Error("metrics server", zap.Error(err))
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error { return srv.Shutdown(ctx) },
	})
}
