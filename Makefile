# cioq: the two commands a newcomer needs are `make demo` and `make test`.
GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?=

.PHONY: all build demo test test-short bench lint fmt vet staticcheck clean

all: build

build:
	$(GO) build -o bin/cioq ./cmd/cioq

## demo: the whole pipeline on an embedded Redis and the fake Track API.
demo:
	$(GO) run ./cmd/cioq demo

## test: every test with the race detector, on a Redis of its own
## (REDIS_ADDR when set; else a private redis-server, installed if missing).
test:
	scripts/with-redis.sh $(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)

## bench: throughput and latency benchmarks (figures go to docs/BENCHMARKS.md).
bench:
	scripts/with-redis.sh $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./loadtest/...

## lint: gofmt, go vet and staticcheck must all be clean.
lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) tool staticcheck $(PKGS)

clean:
	rm -rf bin
