package sidecar

import (
	"time"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/upgrade"
)

// Config is everything one sidecar needs to know.
type Config struct {
	Node          string
	Version       string
	Conn          conn.Config
	GWPrefix      string
	NodelocalRoot string
	LocalRoot     string
	// SkipSteps are the steps this node will not run (--skip-steps): the
	// preflight rejects runs that need them here.
	SkipSteps []string
	Keys      upgrade.Keys

	// Embed, when set, runs an etcd member in this process; Conn then
	// defaults to its client URL.
	Embed *embed.Config

	SessionTTL    int
	FlushInterval time.Duration
	Attempts      int
	RetryBackoff  time.Duration

	// RecoverInterval is how often files a killed GC set aside are put
	// back (RecoverModule); zero means DefaultRecoverInterval.
	RecoverInterval time.Duration

	// MetricsAddr serves /metrics and /healthz; empty means off.
	MetricsAddr string
	// LogLevel is debug, info, warn or error.
	LogLevel string
}

// Endpoints are the etcd endpoints the sidecar uses: the configured ones,
// else the embedded member's, else etcd's default.
func (cfg Config) Endpoints() []string {
	switch {
	case len(cfg.Conn.Endpoints) > 0:
		return cfg.Conn.Endpoints
	case cfg.Embed == nil:
		return []string{conn.DefaultEndpoint}
	case cfg.Embed.ClientURL != "":
		return []string{cfg.Embed.ClientURL}
	case cfg.Embed.TLS != nil:
		return []string{"https://127.0.0.1:2379"}
	}
	return []string{"http://127.0.0.1:2379"}
}
