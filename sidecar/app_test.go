package sidecar_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/sidecar"
	"github.com/rokup/rokup/upgrade"
)

type extraHook struct{ name string }

func (h extraHook) Name() string                          { return h.name }
func (h extraHook) Placement() hooks.Placement            { return hooks.Leader }
func (h extraHook) Run(context.Context, hooks.Task) error { return nil }

func config(t *testing.T, eps []string) sidecar.Config {
	ports, err := embed.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return sidecar.Config{Node: "node-1", Conn: conn.Config{Endpoints: eps, DialTimeout: 5 * time.Second},
		NodelocalRoot: t.TempDir(), LocalRoot: t.TempDir(), Keys: upgrade.DefaultKeys, SessionTTL: 2,
		MetricsAddr: "127.0.0.1:" + strconv.Itoa(ports[0])}
}

// The whole app: every step of the plan is found through the hooks group,
// plus a plugin, and the metrics endpoint serves.
func TestAppFindsEveryStepHookAndServesMetrics(t *testing.T) {
	m := embed.NewTestMember(t)
	cfg := config(t, m.Endpoints())
	var reg *hooks.Registry
	app := fxtest.New(t, sidecar.Options(cfg, zap.NewNop()),
		fx.Provide(sidecar.As(func() hooks.Hook { return extraHook{"site-backup"} })),
		fx.Populate(&reg))
	app.RequireStart()
	defer app.RequireStop()
	for _, name := range []string{"gc-precollect", "gc-precollect-ca", "gc-fence", "gw-migrate", "epochs-nodelocal",
		"epochs-ca", "epochs-all", "v2-epochs-cleanup", "gc-unfence", "site-backup"} {
		if _, err := reg.Get(name); err != nil {
			t.Errorf("hook %s not registered: %v", name, err)
		}
	}
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(body, "rokup_is_leader") {
		resp, err := http.Get("http://" + cfg.MetricsAddr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, `rokup_is_leader{node="node-1"}`) {
		t.Fatalf("/metrics does not show rokup_is_leader: %.300s", body)
	}
	resp, err := http.Get("http://" + cfg.MetricsAddr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestAppRefusesTwoHooksWithOneName(t *testing.T) {
	m := embed.NewTestMember(t)
	app := fx.New(fx.NopLogger, sidecar.Options(config(t, m.Endpoints()), zap.NewNop()),
		fx.Provide(sidecar.As(func() hooks.Hook { return extraHook{"gc-fence"} })),
		fx.Invoke(func(*hooks.Registry) {}))
	if err := app.Err(); !errors.Is(err, hooks.ErrDuplicateHook) {
		t.Fatalf("want startup to fail with ErrDuplicateHook, got %v", err)
	}
}
