# rokup — see README.md. `make demo` and `make test` are the two commands a
# newcomer needs; both work on a fresh machine with Go.
GO      ?= go
BIN     := bin
CMDS    := rokup rok-gw-manage rok-composer-tool rok-gc
# Packages cheap enough to run under the race detector on 2 cores.
RACE_PKGS ?= ./batch/... ./cli/... ./conn/... ./fencing/... ./hooks/... ./libmap/... ./composer/... ./gc/... ./upgrade/...
TEST_TIMEOUT ?= 9m

.PHONY: all build test test-race test-rest demo bench soak lint deps clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

# deps installs what the tests use beyond Go: Debian's etcd 3.4 (a real
# external etcd and the real etcdctl). Tests that need them skip with a clear
# message when they are missing, so this is best effort.
deps:
	@if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then \
		echo "deps: etcd $$(etcd --version 2>/dev/null | head -1 | awk '{print $$3}') and etcdctl present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "deps: installing Debian's etcd-server and etcd-client"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null) \
			|| echo "deps: could not install etcd-server/etcd-client; external-etcd tests will skip"; \
	else \
		echo "deps: etcd/etcdctl not installed and cannot install them here; external-etcd tests will skip"; \
	fi

test: deps build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -race $(RACE_PKGS)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v -E '/(batch|cli|conn|fencing|hooks|libmap|composer|gc|upgrade)($$|/)')

demo: build
	$(BIN)/rokup demo

# bench: a few minutes on 2 cores; the acceptance size is
# `rokup bench --docs 200000 --objects 1000000` (see README).
bench: build
	$(BIN)/rokup bench --docs 20000 --objects 100000

# soak runs the randomized fault matrix of issue 8 (integration/soak_test.go)
# and prints a table: scenario, runs, passed, invariant broken with the seed.
# Reproduce one failure with SOAK_SEED=<seed> SOAK_RUNS=1 SOAK_ONLY=<scenario>.
SOAK_SEED ?= $(shell date +%s)
SOAK_RUNS ?= 200
SOAK_ONLY ?=
SOAK_TIMEOUT ?= 6h
soak: build
	ROKUP_SOAK=1 SOAK_SEED=$(SOAK_SEED) SOAK_RUNS=$(SOAK_RUNS) SOAK_ONLY=$(SOAK_ONLY) \
		$(GO) test -v -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestSoak$$' ./integration/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
