# hive: the per-machine telemetry daemon. `make run` and `make test` are
# the two commands a fresh clone needs.
GO        ?= go
BIN       := bin
GOBIN_ABS := $(abspath $(BIN))
NATSCLI   := $(BIN)/nats
export GORACE := atexit_sleep_ms=0
# Static binaries by default: they run in FROM scratch images and on any
# Linux. bin/hive is the exception where a C compiler is at hand: NVML is
# loaded with dlopen (go-nvml), which needs cgo; that binary links glibc
# and reads NVML wherever libnvidia-ml.so.1 loads, else nvidia-smi.
export CGO_ENABLED ?= 0
HIVE_CGO  ?= $(shell command -v cc >/dev/null 2>&1 && echo 1 || echo 0)
# go-nvml's header marks calls the hive never makes as deprecated.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
# cgo writes its probe files to $TMPDIR, and gcc looks for a quoted
# #include beside the including file first: a stray /tmp/nvml.h (NVIDIA's
# cuda_nvml_dev unpacked there, a normal thing on a GPU developer's
# machine) broke a cold build of go-nvml. Every recipe here builds with a
# temporary directory of the project's own.
export TMPDIR := $(CURDIR)/.cache/tmp
$(shell mkdir -p $(TMPDIR))
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.buildCommit=$(COMMIT)

COMPOSE   ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_FILE := deployments/docker-compose.yml

.PHONY: test-outage bench-engines cgo-build-check bench-idle nvml-fake bench-nvml bench-hives images-gpu gpu-check bench-fanout bench-collector compose-env test-stress dist fuzz all build run test test-race test-short bench lint fmt tools clean images compose-up compose-down compose-test

all: lint build test

build: ## hive (with NVML where a C compiler is at hand) and the demo worker into bin/
	@CGO_ENABLED=$(HIVE_CGO) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/hive ./cmd/hive || { \
		echo "make build: the hive with NVML (cgo, go-nvml's header through the C compiler) did not build; see the errors above."; \
		echo "  The static hive needs no C compiler and reads GPUs through nvidia-smi: make build HIVE_CGO=0"; exit 1; }
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/demo-worker ./cmd/demo-worker

# Standalone by default: no Queen, so nothing to fail at. Join one with
# make run ARGS='--queen-url http://queen:7833' (later flags win).
run: build ## the hive with embedded defaults, no other service
	$(BIN)/hive --queen-url "" $(ARGS)

# The NATS CLI, for the test that subscribes with the real `nats sub`.
$(NATSCLI):
	GOBIN=$(GOBIN_ABS) $(GO) install github.com/nats-io/natscli/nats@v0.5.0

tools: $(NATSCLI)

# The cgo part of the build alone, for the test that plants a hostile
# nvml.h where the caller's TMPDIR points (internal/nvml: TestBuildIgnoresTMPDIR).
cgo-build-check:
	@CGO_ENABLED=1 $(GO) build -o /dev/null ./internal/nvml

# A stand-in for libnvidia-ml.so.1 (internal/nvml/fake), for the GPU
# health tests on machines without a GPU.
nvml-fake: $(BIN)/fake-nvml/libnvidia-ml.so.1 ## the fake NVML library, bin/fake-nvml/libnvidia-ml.so.1
$(BIN)/fake-nvml/libnvidia-ml.so.1: internal/nvml/fake/fake_nvml.c
	@mkdir -p $(dir $@)
	cc -shared -fPIC -O2 -Wall -o $@ $< -lpthread

bench-nvml: nvml-fake ## one NVML Sample through go-nvml against the fake library, 1 and 8 GPUs
	CGO_ENABLED=1 FAKE_NVML_LIB=$(abspath $(BIN))/fake-nvml/libnvidia-ml.so.1 $(GO) test -run '^$$' -bench BenchmarkSampleFakeLibrary -benchmem -count 3 ./internal/nvml

test: lint tools ## every test, with the race detector
	CGO_ENABLED=1 PATH="$(GOBIN_ABS):$$PATH" $(GO) test -race -count=1 -timeout 9m ./...

# The hub outage of issue 34 at its full length: every hub node down for
# OUTAGE_SECONDS (make test runs it for 15 s).
OUTAGE_SECONDS ?= 120
test-outage: tools ## every hub node down for OUTAGE_SECONDS (120): the history has no hole
	CGO_ENABLED=1 HIVE_OUTAGE_SECONDS=$(OUTAGE_SECONDS) PATH="$(GOBIN_ABS):$$PATH" $(GO) test -count=1 -timeout 30m -v -run '^TestHubOutageLosesNothing$$' ./cmd/hive

# The suite while two busy loops hold both cores, as on a shared CI
# machine. STRESS_RUNS=5 is the bar of issue 10; .ci/run runs it once.
STRESS_RUNS ?= 1
test-stress: lint tools ## every test with both cores busy, STRESS_RUNS times in a row
	@set -e; pids=""; for i in 1 2; do sh -c 'while :; do :; done' & pids="$$pids $$!"; done; \
	trap 'kill $$pids 2>/dev/null' EXIT INT TERM; \
	for r in $$(seq $(STRESS_RUNS)); do \
		echo "== stress run $$r of $(STRESS_RUNS), burners:$$pids"; \
		CGO_ENABLED=1 PATH="$(GOBIN_ABS):$$PATH" $(GO) test -race -count=1 -timeout 9m ./...; \
	done

test-short: ## the tests without the race detector
	PATH="$(GOBIN_ABS):$$PATH" $(GO) test -count=1 ./...

bench: ## benchmarks; results go in docs/BENCHMARKS.md
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./...
	$(MAKE) bench-engines

# What reading 50 engines' 43 KB pages every second costs the hive, against
# the same workers with engine reads off.
bench-engines: build ## the engines' load: hive CPU and RSS with and without engine reads; ENGINES=50
	$(GO) run ./bench/engines -hive $(BIN)/hive -engines $(or $(ENGINES),50) -window $(WINDOW)

# The collector against a plain-Go floor doing the same job, in one run:
# hive CPU, floor CPU, their ratio and the tick jitter an SSE client sees.
WORKERS ?= 100,1000
WINDOW  ?= 30s
# An idle hive's CPU and wake-ups with one SSE client and one NATS
# subscriber, idle and with 10 workers, against the floor collector.
IDLE_WINDOW ?= 40
bench-idle: build tools ## idle hive CPU and context switches vs the floor; IDLE_WINDOW=40 (s)
	$(GO) build -trimpath -o $(BIN)/floorcollector ./bench/floorcollector
	bash bench/idle.sh $(IDLE_WINDOW)

bench-collector: build ## collector CPU vs the floor program; WORKERS=100,1000 WINDOW=30s
	$(GO) build -trimpath -o $(BIN)/floorcollector ./bench/floorcollector
	$(GO) run ./bench/collector -hive $(BIN)/hive -floor $(BIN)/floorcollector -workers $(WORKERS) -window $(WINDOW)

# SSE fan-out: the same load generator against the hive, the naive
# net/http floor and (where built) Centrifugo. CLIENTS=1000 FANOUT_WINDOW=20s
CLIENTS ?= 1000
FANOUT_WINDOW ?= 20s
bench-fanout: build ## SSE fan-out vs the net/http floor and Centrifugo; CLIENTS=N
	$(GO) build -trimpath -o $(BIN)/floorfanout ./bench/floorfanout
	$(GO) build -trimpath -o $(BIN)/fanoutload ./bench/fanout
	bash bench/fanout.sh $(CLIENTS) $(FANOUT_WINDOW)

# The hive against a GPU: on a host with nvidia-smi, a real PyTorch worker
# (bench/gpucheck/gpu_probe.py); elsewhere the fake nvidia-smi, which
# answers in the format the real card printed. GPUCHECK_ARGS=-record
# saves every nvidia-smi output as fixtures.
gpu-check: ## check GPU telemetry on this host's GPU (NVML, then nvidia-smi), or on the fake nvidia-smi without one
	CGO_ENABLED=$(HIVE_CGO) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/hive ./cmd/hive
	$(GO) build -trimpath -o $(BIN)/gpucheck ./bench/gpucheck
	@if command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/gpucheck -hive $(BIN)/hive -source nvml $(GPUCHECK_ARGS) && $(BIN)/gpucheck -hive $(BIN)/hive -source smi $(GPUCHECK_ARGS); \
	else echo "no nvidia-smi here: checking against the fake one"; $(BIN)/gpucheck -fake -hive $(BIN)/hive -window 10s $(GPUCHECK_ARGS); fi

# Many real hives against the 3-node hub cluster of deployments/hub.conf
# with its history stream: hub CPU and RSS per hive, message rates and
# latency (docs/SCALE.md). HIVES=100,200 WINDOW=30s
HIVES ?= 100
OUTAGE ?= 0
bench-hives: build ## N hives against a local 3-node hub cluster; HIVES=100 WINDOW=30s OUTAGE=0 (e.g. 120s: every node down, then the backlogs drain)
	$(GO) build -trimpath -o $(BIN)/nats-server github.com/nats-io/nats-server/v2
	$(GO) run ./bench/manyhives -hive $(BIN)/hive -nats-server $(BIN)/nats-server -hives $(HIVES) -window $(WINDOW) -outage $(OUTAGE)

FUZZTIME ?= 15s
fuzz: ## the fuzz targets of every untrusted-input parser, FUZZTIME each
	$(GO) test -run '^$$' -fuzz '^FuzzParseOperation$$' -fuzztime $(FUZZTIME) ./modules/jobs
	$(GO) test -run '^$$' -fuzz '^FuzzValidateQueenURL$$' -fuzztime $(FUZZTIME) ./bus/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/nvsmi

lint: ## go vet and a gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

# Static binaries and build contexts for the FROM scratch images.
dist: build
	rm -rf dist && mkdir -p dist/data/models dist/data/logs
	cp $(BIN)/demo-worker deployments/hub.conf deployments/hub-stream.json deployments/hub-reader.json dist/
	# rbee-hive gets a static hive (FROM scratch has no libc, so no NVML);
	# rbee-hive-gpu, which carries glibc, the cgo one that reads NVML.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/hive ./cmd/hive
	CGO_ENABLED=$(HIVE_CGO) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/hive-nvml ./cmd/hive
	GOBIN=$(abspath dist) $(GO) install -trimpath -ldflags '$(LDFLAGS)' github.com/nats-io/nats-server/v2@v2.15.2
	GOBIN=$(abspath dist) $(GO) install -trimpath -ldflags '-s -w' github.com/nats-io/natscli/nats@v0.5.0

images: dist ## rbee-hive:dev and rbee-hive-hub:dev
	docker build -q -t rbee-hive:dev -f deployments/Dockerfile dist
	docker build -q -t rbee-hive-hub:dev -f deployments/Dockerfile.hub dist
	@docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^rbee-hive'

# The GPU image adds the build host's glibc runtime, which the NVIDIA
# runtime's injected nvidia-smi needs (deployments/Dockerfile.gpu).
GLIBC_LIBS := libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1
images-gpu: dist ## rbee-hive-gpu:dev, for hosts with the NVIDIA container runtime
	rm -rf dist/glibc && mkdir -p dist/glibc/lib64 dist/glibc/lib/x86_64-linux-gnu dist/glibc/usr/lib/x86_64-linux-gnu dist/glibc/usr/bin
	cp -L /lib64/ld-linux-x86-64.so.2 dist/glibc/lib64/
	for l in $(GLIBC_LIBS); do cp -L /lib/x86_64-linux-gnu/$$l dist/glibc/lib/x86_64-linux-gnu/; done
	docker build -q -t rbee-hive-gpu:dev -f deployments/Dockerfile.gpu dist

# Random secrets on first use, never shipped defaults: the hives' leafnode
# password, the hub nodes' route password and the hub admin's (who makes
# the history stream). A file from before the hub cluster gets the ones it
# lacks.
HUB_SECRETS := HIVE_LEAF_PASSWORD HIVE_ROUTE_PASSWORD HIVE_HUB_ADMIN_PASSWORD HIVE_HUB_READER_PASSWORD HIVE_HUB_HISTORIAN_PASSWORD
compose-env: ## deployments/.env with random hub secrets, and deployments/secrets/ with a CA and every service's certificate (kept once made)
	@umask 077; touch deployments/.env; for k in $(HUB_SECRETS); do \
		if ! grep -q "^$$k=." deployments/.env; then \
			sed -i "/^$$k=/d" deployments/.env; \
			printf '%s=%s\n' "$$k" "$$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> deployments/.env; \
			echo "deployments/.env: generated $$k"; fi; done
	@if grep -Eq '^HIVE_LEAF_PASSWORD=change-me$$' deployments/.env; then \
		echo "deployments/.env: HIVE_LEAF_PASSWORD is the old default; delete the line to generate one"; exit 1; fi
	@$(GO) run ./deployments/mkcerts -dir deployments/secrets

compose-up: images compose-env ## a 3-node hub cluster with its history stream, and three hives with their demo workers
	$(COMPOSE) -f $(COMPOSE_FILE) up -d

compose-down: compose-env
	$(COMPOSE) -f $(COMPOSE_FILE) down -v --remove-orphans

compose-test: images images-gpu compose-env ## clean start, checks from the host and at the hub, teardown
	COMPOSE="$(COMPOSE)" COMPOSE_FILE=$(abspath $(COMPOSE_FILE)) PATH="$(GOBIN_ABS):$$PATH" \
		$(GO) test -tags compose -count=1 -timeout 9m -v -run 'TestCompose|TestImage' ./deployments/

clean:
	rm -rf $(BIN) dist
