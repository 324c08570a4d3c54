package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/embed"
)

// store is a seeded pre-0.14 Gateway store: what the test put in v2.
type store struct {
	prefix string
	docs   map[string]string        // every document the move must copy
	ttl    map[string]time.Duration // the TTL each TTL document got
	empty  []string                 // empty directories
	// published bucket names, and the invalid-JSON bucket.
	published []string
	invalid   string
}

type seedSize struct {
	docs  int  // plain documents, spread over nested directories
	big   bool // one 1 MiB value and one of 300 KiB
	ttls  int
	ledge bool // a v2-era ledger entry for gw.0001_initial
}

var small = seedSize{docs: 3000, big: true, ttls: 40, ledge: true}

// seed writes a Gateway store into v2 under prefix: nested directories,
// unicode keys, empty values, large values, TTL documents, the hidden
// v2-era ledger, empty directories, bucket documents (published, not,
// invalid JSON), and a v2 key outside the prefix that must not move.
func seed(t testing.TB, kapi clientv2.KeysAPI, prefix string, size seedSize) *store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := &store{prefix: prefix, docs: map[string]string{}, ttl: map[string]time.Duration{}}
	rng := rand.New(rand.NewSource(42))
	type put struct {
		k, v string
		ttl  time.Duration
	}
	var puts []put
	add := func(k, v string, ttl time.Duration) {
		puts = append(puts, put{k, v, ttl})
		s.docs[k] = v
		if ttl > 0 {
			s.ttl[k] = ttl
		}
	}
	for i := 0; i < size.docs; i++ {
		k := fmt.Sprintf("%s/objects/d%02d/s%d/doc-%05d", prefix, i%17, i%5, i)
		v := strings.Repeat(string(rune('a'+i%26)), rng.Intn(700))
		if i%97 == 0 {
			v = ""
		}
		add(k, v, 0)
	}
	for i, name := range []string{"ключ", "日本語のキー", "emoji-🚀", "space and+plus", "ütf/ñested"} {
		add(fmt.Sprintf("%s/unicode/%s-%d", prefix, name, i), fmt.Sprintf(`{"name":%q}`, name), 0)
	}
	if size.big {
		add(prefix+"/blobs/one-mib", strings.Repeat("x", 1<<20), 0)
		add(prefix+"/blobs/300k", strings.Repeat("y", 300<<10), 0)
	}
	for i := 0; i < size.ttls; i++ {
		add(fmt.Sprintf("%s/sessions/s-%03d", prefix, i), "session", time.Duration(600+(i/4)*7)*time.Second)
	}
	buckets := map[string]string{
		"alpha":      `{"name":"alpha","published":true,"registry":"r1","x_unknown":{"keep":[1,2]}}`,
		"beta":       `{"name":"beta","published":false}`,
		"team/gamma": `{"name":"gamma","published":true,"syncing":true,"sync_revision":123456}`,
		"broken":     `{not json`,
	}
	for name, v := range buckets {
		add(prefix+"/buckets/"+name, v, 0)
	}
	s.published = []string{"alpha", "team/gamma"}
	s.invalid = "broken"
	if size.ledge {
		add(prefix+"/_migrations/gw/0001_initial", `{"applied":"2023-03-01T12:00:00Z","by":"rok-gw-manage 0.13"}`, 0)
	}

	work := make(chan put)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if _, err := kapi.Set(ctx, p.k, p.v, &clientv2.SetOptions{TTL: p.ttl}); err != nil {
					errs <- fmt.Errorf("seed %s: %w", p.k, err)
					return
				}
			}
		}()
	}
	for _, p := range puts {
		select {
		case work <- p:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	for _, d := range []string{prefix + "/empty/a", prefix + "/empty/b/c"} {
		if _, err := kapi.Set(ctx, d, "", &clientv2.SetOptions{Dir: true}); err != nil {
			t.Fatal(err)
		}
		s.empty = append(s.empty, d)
	}
	if _, err := kapi.Set(ctx, "/epochs/maps-ca/abc", "3", nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// testEnv is one embedded etcd with a seeded store.
type testEnv struct {
	eps   []string
	cli   *clientv3.Client
	kapi  clientv2.KeysAPI
	store *store
}

func newEnv(t testing.TB, size seedSize) *testEnv {
	t.Helper()
	m := embed.NewTestMember(t)
	kapi := embed.NewTestV2(t, m.Endpoints())
	return &testEnv{eps: m.Endpoints(), cli: embed.NewTestClient(t, m.Endpoints()), kapi: kapi, store: seed(t, kapi, DefaultPrefix, size)}
}

func (e *testEnv) executor(t testing.TB, move MoveOptions) *Executor {
	t.Helper()
	ex, err := NewExecutor(GW(), Env{V3: e.cli, V2: e.kapi, Prefix: e.store.prefix, Move: move})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// migrate runs "migrate [app [target]]".
func (e *testEnv) migrate(ctx context.Context, t testing.TB, app, target string, move MoveOptions) ([]StepResult, error) {
	t.Helper()
	ex := e.executor(t, move)
	applied, err := ex.Applied(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := ex.Plan(app, target, applied)
	if err != nil {
		return nil, err
	}
	return ex.Run(ctx, plan, RunOptions{})
}

// v3Docs returns the v3 keys under the prefix a user would call Gateway
// documents: everything but the ledger entries rokup itself wrote.
func (e *testEnv) v3Docs(t testing.TB) map[string]string {
	t.Helper()
	resp, err := e.cli.Get(context.Background(), e.store.prefix+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if strings.HasPrefix(k, e.store.prefix+"/_migrations/") {
			if _, fromV2 := e.store.docs[k]; !fromV2 {
				continue
			}
		}
		out[k] = string(kv.Value)
	}
	return out
}

// assertMoved checks v3 holds every v2 document byte for byte, and
// nothing else, ignoring the bucket documents 0003 edits when marked.
func (e *testEnv) assertMoved(t testing.TB, skipBuckets bool) {
	t.Helper()
	got := e.v3Docs(t)
	for k, v := range e.store.docs {
		if skipBuckets && strings.HasPrefix(k, e.store.prefix+"/buckets/") {
			if _, ok := got[k]; !ok {
				t.Errorf("v3 lacks %s", k)
			}
			continue
		}
		g, ok := got[k]
		if !ok {
			t.Errorf("v3 lacks %s", k)
			continue
		}
		if g != v {
			t.Errorf("v3 %s: %d bytes differ from v2's %d", k, len(g), len(v))
		}
	}
	for k := range got {
		if _, ok := e.store.docs[k]; !ok {
			t.Errorf("v3 has %s, which is not a v2 document", k)
		}
	}
	e.assertPrefixClean(t)
}

// assertPrefixClean checks what Gateway 0.14 reads: a v3 range over the
// prefix holds the v2 documents and, besides them, only ledger entries
// <prefix>/_migrations/gw/<name> of registered migrations; and no v3 key
// anywhere has an empty path segment.
func (e *testEnv) assertPrefixClean(t testing.TB) {
	t.Helper()
	ledger := map[string]bool{}
	for _, m := range must(GW().App("gw")) {
		ledger[e.store.prefix+"/_migrations/gw/"+m.Name] = true
	}
	resp, err := e.cli.Get(context.Background(), "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	extra := 0
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if strings.Contains(k, "//") || strings.HasSuffix(k, "/") {
			t.Errorf("v3 key %s has an empty path segment", k)
		}
		if !strings.HasPrefix(k, e.store.prefix+"/") {
			continue
		}
		if _, doc := e.store.docs[k]; !doc && !ledger[k] {
			if extra++; extra <= 5 {
				t.Errorf("v3 under %s holds %s: neither a v2 document nor a ledger entry", e.store.prefix, k)
			}
		}
	}
	if extra > 5 {
		t.Errorf("... %d such keys in all", extra)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func (e *testEnv) bucket(t testing.TB, name string) map[string]any {
	t.Helper()
	resp, err := e.cli.Get(context.Background(), e.store.prefix+"/buckets/"+name)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("bucket %s: %v (%d keys)", name, err, len(resp.Kvs))
	}
	var doc map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &doc); err != nil {
		t.Fatalf("bucket %s: %v", name, err)
	}
	return doc
}
