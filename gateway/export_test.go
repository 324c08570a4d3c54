package gateway

import (
	"testing"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The seeded-layout benchmarks live in package gateway_test: they seed
// with package seed, which imports gateway. These give them the
// benchmarks' plumbing.

type BenchEnv = benchEnv

func BenchDocs() int { return benchDocs() }

func BenchMember(b *testing.B, name string) (string, *clientv3.Client, clientv2.KeysAPI) {
	return benchMember(b, name)
}

func NewBenchEnv(cli *clientv3.Client, kapi clientv2.KeysAPI, docs int) *BenchEnv {
	return &benchEnv{cli: cli, kapi: kapi, docs: docs}
}

func BenchMove(b *testing.B, e *BenchEnv) { benchMove(b, e) }

func NaiveCopyFirst(b *testing.B, e *BenchEnv, n int) { naiveCopyFirst(b, e, n) }
