# cioq: the two commands a newcomer needs are `make demo` and `make test`.
GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?=

.PHONY: all build demo test test-short bench faults lint fmt vet staticcheck clean k8s-validate deploy-validate browser-check browser-test node-deps node-test

all: build

build:
	$(GO) build -o bin/cioq ./cmd/cioq

## demo: the whole pipeline on an embedded Redis and the fake Track API.
demo:
	$(GO) run ./cmd/cioq demo

## test: every test with the race detector, on a Redis of its own
## (REDIS_ADDR when set; else a private redis-server, installed if missing).
## First the Node SDK harness's dependencies (node-deps), so the Node SDK
## tests (cdp/fake, ingest) run; without node or npm it says so and they
## skip. Then the offline manifest checks and the asynqmon browser check:
## Debian's chromium is installed with apt-get when missing (13-20 s
## measured); where it cannot be, the run says so clearly and the browser
## check skips.
test: node-deps
	scripts/with-redis.sh $(GO) test -race -count=1 -timeout 25m $(TESTFLAGS) $(PKGS)
	$(MAKE) --no-print-directory k8s-validate
	$(MAKE) --no-print-directory browser-test

## node-deps: install loadtest/node's pinned dependencies
## (@customerio/cdp-analytics-node, npm ci from package-lock.json) when
## missing; says so clearly, and succeeds, where node or npm is absent (the
## Node SDK tests then skip).
NODE_HARNESS := loadtest/node
node-deps:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "node-deps: node or npm not installed: the Node SDK tests (@customerio/cdp-analytics-node against the fake and cioq ingest) SKIP"; \
	elif [ -f $(NODE_HARNESS)/node_modules/@customerio/cdp-analytics-node/package.json ]; then \
	  echo "node-deps: $(NODE_HARNESS) dependencies installed (node $$(node --version)): the Node SDK tests run"; \
	else \
	  echo "node-deps: npm ci in $(NODE_HARNESS) (from package-lock.json)"; \
	  (cd $(NODE_HARNESS) && npm ci --no-audit --no-fund); \
	fi

## node-test: only the Node SDK tests, verbose (they drive the unchanged SDK
## against the fake Pipelines API and against cioq ingest).
node-test: node-deps
	scripts/with-redis.sh $(GO) test -count=1 -v -run 'NodeSDK' ./cdp/fake/ ./ingest/

## k8s-validate: render every k8s/ overlay with kustomize's Go library and
## decode each object strictly; check probes, metric names, Secret keys,
## security contexts, alert rules, dashboard, compose file. Offline, no
## kubectl; its own module (k8s/validate), without -race.
k8s-validate:
	@command -v promtool >/dev/null 2>&1 || echo "k8s-validate: promtool not installed: Prometheus rule/config syntax is not checked (make deploy-validate installs it)"
	cd k8s/validate && GOFLAGS=-mod=mod $(GO) test -count=1 -timeout 10m ./...

## deploy-validate: promtool check on deploy/prometheus (installs Debian's
## prometheus package for promtool when missing).
deploy-validate:
	@command -v promtool >/dev/null 2>&1 || { echo "deploy-validate: installing promtool (Debian package prometheus)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
	promtool check rules deploy/prometheus/alerts.yml
	promtool check config deploy/prometheus/prometheus.yml

## browser-check: the asynqmon UI in headless Chromium (deploy/browser); skips,
## saying why, without /usr/bin/chromium (or $$CIOQ_CHROMIUM).
## browser-test: installs Debian's chromium first when missing
## (scripts/ensure-chromium.sh; CIOQ_NO_CHROMIUM_INSTALL=1 skips the install).
browser-check:
	GOFLAGS=-mod=mod scripts/with-redis.sh $(GO) -C deploy/browser test -count=1 -v -timeout 5m ./...

browser-test:
	scripts/ensure-chromium.sh
	$(MAKE) --no-print-directory browser-check

## bench: throughput and latency benchmarks (figures go to docs/BENCHMARKS.md).
bench:
	scripts/with-redis.sh $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./loadtest/...

## faults: the fault suite (faults/): every scenario of docs/FAULTS.md with a
## redis-server of its own, cioq worker processes and the fake's ledger; fails
## on any loss or duplicate. The table is printed and kept in bin/faults.md.
## CIOQ_FAULTS=1,6 runs some scenarios only (make test runs the short ones).
faults:
	@mkdir -p bin
	CIOQ_FAULTS=$${CIOQ_FAULTS:-all} CIOQ_FAULTS_TABLE=$(CURDIR)/bin/faults.md \
	  scripts/with-redis.sh $(GO) test -count=1 -v -timeout 30m -run '^TestFaults$$' ./faults/

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
