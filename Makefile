# Corral — build, run, test. See README.md.
GO       ?= go
BIN      := bin
PKGS     := ./...
CONFIG   ?= config.example.toml

.PHONY: all build run test test-partition chaos bench fuzz vet fmt clean

all: build

# -buildvcs=auto stamps the commit into the programs (corrald --version),
# whatever GOFLAGS says, when built from a git checkout. corralctl is
# linked statically (no cgo): it starts without the dynamic loader and libc,
# a millisecond sooner for every command, and resolves names with Go's own
# resolver (/etc/hosts and DNS).
build:
	$(GO) build -buildvcs=auto -o $(BIN)/corrald ./cmd/node
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -o $(BIN)/corralctl ./cmd/ctl
	$(GO) build -o $(BIN)/encoder-demo ./examples/encoder-demo
	$(GO) build -o $(BIN)/consumer-demo ./examples/consumer-demo
	$(GO) build -o $(BIN)/idle-worker ./examples/idle-worker

# Build and start a node with the embedded NATS server and the example config.
run: build
	./$(BIN)/corrald --config $(CONFIG)

# Every test, with the race detector. Tests build what they need themselves.
# Then the tests that count allocations, without it: the race detector
# drops pooled objects at random (sync.Pool), so they skip themselves
# under it.
ALLOC_TESTS := '^(TestPublishAllocatesNothingOfItsOwn|TestHeartbeatDoesNotAllocate|TestFollowHookCostsNothingWhileNobodyFollows|TestReadLineDoesNotAllocate|TestDecoderReusesStrings)$$'
test: vet
	$(GO) test -race -count=1 -timeout 9m $(PKGS)
	$(GO) test -count=1 -run $(ALLOC_TESTS) ./bus/relay/ ./node/ ./client/wire/

# The partition test: three nodes, each in a network namespace of its own
# behind a bridge, one cut off and healed (root and iproute2 needed).
test-partition:
	CORRAL_PARTITION=1 $(GO) test -count=1 -timeout 5m -run '^TestPartition$$' -v ./e2e/

# The chaos test: three nodes, about 300 children emitting acked events,
# random kill -9 of nodes and children (and NATS servers with
# CHAOS_MODE=external) for CHAOS_DURATION, then checks and a summary table.
CHAOS_DURATION ?= 5m
CHAOS_MODE     ?= embedded
chaos:
	CORRAL_CHAOS=1 CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_MODE=$(CHAOS_MODE) \
		$(GO) test -count=1 -timeout 90m -run '^TestChaos$$' -v ./e2e/

vet:
	$(GO) vet $(PKGS)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# Benchmarks: throughput, latency, spawn time (figures go in issue notes).
# The nodes' data directories are temporary directories (TMPDIR): a spawn
# makes a file for its record and a FIFO for its output, and on an ext4
# without a journal that freed many inodes lately (a test machine) making
# them costs more than the rest of the spawn; TMPDIR=/dev/shm measures
# Corral without that.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s $(PKGS)

# A fuzzing pass over every fuzz target (every parser of untrusted input:
# the wire decoder, line reader, control request decoders, schema
# validator, /proc parser), FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	@for f in $$(grep -l '^func Fuzz' $$(git ls-files '*_test.go')); do \
		for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/func //'); do \
			echo "== $$t ($$(dirname $$f))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f) || exit 1; \
		done; \
	done

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN) .corral
