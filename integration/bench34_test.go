package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/integration/harness"
	"github.com/rokup/rokup/seed"
)

// BenchmarkMigrateEtcd34 is issue 13's etcd 3.4 case (make bench-etcd34):
// on a 3-member Debian etcd 3.4 cluster seeded with mixed Gateway
// documents (small JSON, TTL sessions, a few 64 KiB blobs, unicode keys,
// empty directories), the whole `rok-gw-manage migrate` command, process
// start included, against a naive copier (one v2 get and one v3 put per
// document, in sequence, on a sample spread over the store, scaled to all
// of it). ROKUP_BENCH34_DOCS sets the documents (default 20000),
// ROKUP_BENCH34_NAIVE the naive sample (default 500).
func BenchmarkMigrateEtcd34(b *testing.B) {
	docs := benchEnvInt(b, "ROKUP_BENCH34_DOCS", 20000)
	sample := benchEnvInt(b, "ROKUP_BENCH34_NAIVE", 500)
	bin, err := harness.Binaries()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		dir := b.TempDir()
		c, err := harness.StartCluster(ctx, harness.Etcd34, filepath.Join(dir, "etcd"))
		if err != nil {
			cancel()
			embed.Unavailable(b, err)
		}
		eps := c.Endpoints()
		cli := embed.NewTestClient(b, eps)
		kapi := embed.NewTestV2(b, eps)
		n, keys := seedMixed(ctx, b, kapi, docs, dir)
		naive, copied := naiveCopy(ctx, b, cli, kapi, keys, sample)

		b.StartTimer()
		start := time.Now()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "rok-gw-manage"), "migrate", "--endpoints", strings.Join(eps, ","), "-o", "json")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		took := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatalf("rok-gw-manage migrate: %v\n%s%s", err, out, stderr.String())
		}
		naiveSecs := naive.Seconds() * float64(n) / float64(copied)
		perS, naivePerS := float64(n)/took.Seconds(), float64(n)/naiveSecs
		b.ReportMetric(perS, "docs/s")
		b.ReportMetric(naivePerS, "naive-docs/s")
		b.ReportMetric(naiveSecs/took.Seconds(), "x-naive")
		fmt.Printf("etcd 3.4 (%s, 3 members): %d documents; rok-gw-manage migrate %.2fs (process start included) = %.0f docs/s; naive copy %.0f docs/s (%d sampled, scaled); %.1fx naive\n  steps: %s\n",
			etcdVersion(), n, took.Seconds(), perS, naivePerS, copied, naiveSecs/took.Seconds(), steps(out))
		c.Close()
		cancel()
	}
}

// steps summarises migrate's -o json: each step's seconds, and the
// move's phases.
func steps(out []byte) string {
	var rep struct {
		Steps []struct {
			Migration struct{ App, Name string } `json:"migration"`
			Seconds   float64                    `json:"seconds"`
			Report    struct {
				Phases      map[string]float64 `json:"phase_seconds"`
				WatchVerify bool               `json:"watch_verify"`
				FastVerify  bool               `json:"fast_verify"`
			} `json:"report"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Sprintf("(no JSON report: %v)", err)
	}
	var s []string
	for _, st := range rep.Steps {
		line := fmt.Sprintf("%s.%s %.2fs", st.Migration.App, st.Migration.Name, st.Seconds)
		if ph := st.Report.Phases; ph != nil {
			line += fmt.Sprintf(" (copy %.2fs, read %.2fs, verify %.2fs; watch %v, fast %v)", ph["copy"], ph["read"], ph["verify"], st.Report.WatchVerify, st.Report.FastVerify)
		}
		s = append(s, line)
	}
	return strings.Join(s, "; ")
}

// seedMixed writes docs Gateway documents with `rokup seed`'s mix (small
// JSON buckets and versions, TTL sessions, the hidden v2-era ledger, an
// empty folder), then a few 64 KiB blobs, unicode keys and empty
// directories. It returns the documents under the prefix and their keys.
func seedMixed(ctx context.Context, b *testing.B, kapi clientv2.KeysAPI, docs int, dir string) (int, []string) {
	m, err := seed.Run(ctx, kapi, seed.Config{Docs: docs, Nodes: seed.Nodes(1), Seed: 34, Layout: seed.Layout{Dir: filepath.Join(dir, "storage")}})
	if err != nil {
		b.Fatal(err)
	}
	p := m.GWPrefix
	extra := map[string]string{}
	for i := 0; i < 4; i++ {
		extra[fmt.Sprintf("%s/blobs/b-%d", p, i)] = strings.Repeat(string(rune('a'+i)), 64<<10)
	}
	for i, name := range []string{"ключ", "日本語のキー", "emoji-🚀", "space and+plus", "ütf/ñested", "ĉapelo"} {
		for j := 0; j < 4; j++ {
			extra[fmt.Sprintf("%s/unicode/%s-%d/%d", p, name, i, j)] = fmt.Sprintf(`{"name":%q,"n":%d}`, name, j)
		}
	}
	for k, v := range extra {
		if _, err := kapi.Set(ctx, k, v, nil); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 8; i++ {
		if _, err := kapi.Set(ctx, fmt.Sprintf("%s/empty/e-%d/inner", p, i), "", &clientv2.SetOptions{Dir: true}); err != nil {
			b.Fatal(err)
		}
	}
	var keys []string
	var walk func(string) error
	walk = func(d string) error {
		resp, err := kapi.Get(ctx, d, &clientv2.GetOptions{Sort: true})
		if err != nil {
			return err
		}
		for _, n := range resp.Node.Nodes {
			if n.Dir {
				if err := walk(n.Key); err != nil {
					return err
				}
				continue
			}
			keys = append(keys, n.Key)
		}
		return nil
	}
	if err := walk(p); err != nil {
		b.Fatal(err)
	}
	return len(keys) + 1, keys // and the hidden ledger entry
}

// naiveCopy copies sample documents spread over keys as a naive tool
// would: one v2 get, then one v3 put, in sequence; the copies go outside
// the Gateway's prefix and are deleted afterwards.
func naiveCopy(ctx context.Context, b *testing.B, cli *clientv3.Client, kapi clientv2.KeysAPI, keys []string, sample int) (time.Duration, int) {
	const dst = "/naive-copy"
	step := max(1, len(keys)/max(1, sample))
	start := time.Now()
	copied := 0
	for i := 0; i < len(keys) && copied < sample; i += step {
		resp, err := kapi.Get(ctx, keys[i], nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cli.Put(ctx, dst+keys[i], resp.Node.Value); err != nil {
			b.Fatal(err)
		}
		copied++
	}
	took := time.Since(start)
	if _, err := cli.Delete(ctx, dst+"/", clientv3.WithPrefix()); err != nil {
		b.Fatal(err)
	}
	return took, copied
}

func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func etcdVersion() string {
	path, err := embed.Etcd34()
	if err != nil {
		return "etcd ?"
	}
	out, _ := exec.Command(path, "--version").Output()
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}
