package sidecar_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/hooks"
	"github.com/rokup/rokup/sidecar"
	"github.com/rokup/rokup/upgrade"
)

// A run's state is a metric an operator can alert on.
func TestMetricsShowTheRunState(t *testing.T) {
	m := embed.NewTestMember(t)
	cfg := config(t, m.Endpoints())
	app := fxtest.New(t, sidecar.Options(cfg, zap.NewNop()),
		fx.Provide(sidecar.As(func() hooks.Hook { return extraHook{"site-backup"} })))
	app.RequireStart()
	defer app.RequireStop()
	cli := embed.NewTestClient(t, m.Endpoints())
	if _, err := cli.Put(context.Background(), upgrade.DefaultKeys.Control(), `{"id":"b1","action":"task","hook":"site-backup"}`); err != nil {
		t.Fatal(err)
	}
	want := `rokup_run_state{node="node-1",run="b1",state="done"} 1`
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(body, want) {
		resp, err := http.Get("http://" + cfg.MetricsAddr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(body, want) || !strings.Contains(body, `rokup_run_state{node="node-1",run="b1",state="failed"} 0`) {
		t.Fatalf("/metrics lacks %s:\n%s", want, grep(body, "rokup_run_state"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
