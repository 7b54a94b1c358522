# hive: the per-machine telemetry daemon. `make run` and `make test` are
# the two commands a fresh clone needs.
GO        ?= go
BIN       := bin
GOBIN_ABS := $(abspath $(BIN))
NATSCLI   := $(BIN)/nats
export GORACE := atexit_sleep_ms=0
# Static binaries: they run in FROM scratch images and on any Linux.
export CGO_ENABLED ?= 0
LDFLAGS   := -s -w

.PHONY: all build run test test-race test-short bench lint fmt tools clean

all: lint build test

build: ## hive and the demo worker into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/hive ./cmd/hive
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/demo-worker ./cmd/demo-worker

run: build ## the hive with embedded defaults, no other service
	$(BIN)/hive $(ARGS)

# The NATS CLI, for the test that subscribes with the real `nats sub`.
$(NATSCLI):
	GOBIN=$(GOBIN_ABS) $(GO) install github.com/nats-io/natscli/nats@v0.5.0

tools: $(NATSCLI)

test: lint tools ## every test, with the race detector
	CGO_ENABLED=1 PATH="$(GOBIN_ABS):$$PATH" $(GO) test -race -count=1 -timeout 9m ./...

test-short: ## the tests without the race detector
	PATH="$(GOBIN_ABS):$$PATH" $(GO) test -count=1 ./...

bench: ## benchmarks; results go in docs/BENCHMARKS.md
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./...

lint: ## go vet and a gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) dist
