# camgate — build, test, demo, bench, cross-compile, lint, package.
GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# nethttpomithttp2: the gateway speaks HTTP/1.1 only (page, ONVIF, event sinks); HTTP/2 would add
# half a MiB to a binary that has to fit a router's flash.
TAGS      ?= nethttpomithttp2
GCFLAGS   ?=
GOBUILD   := CGO_ENABLED=0 $(GO) build -trimpath -tags "$(TAGS)" $(GCFLAGS) -ldflags "$(LDFLAGS)"
# The mipsel router build has a 12 MiB budget: packaging/router.gcflags says what it inlines.
ROUTER_GCFLAGS := $(shell grep -v '^\#' packaging/router.gcflags)
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.7.0
# go run of the pinned module: the binary lands in the build cache, so only the first run builds it.
GOLANGCI_LINT := $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

.PHONY: build test demo bench soak cross lint package package-test clean

OUT ?= camgate
build:
	$(GOBUILD) -o $(BIN)/$(OUT) ./cmd/camgate

# The browser test is its own module, so that chromedp never enters the daemon's go.mod.
test:
	$(GO) test -count=1 -timeout 14m ./...
	cd agent/web/browsertest && $(GO) test -count=1 -timeout 5m ./...

demo: build
	$(BIN)/camgate demo

bench: build
	bash bench/run.sh

# Issue 18's soak, not in make test: each failure path (camera 404, refused connection, refused
# password, ANNOUNCE refused, a flapping mosquitto) SOAK_ATTEMPTS times with the backoff shortened
# by a test-only knob, heap, goroutines and open files checked flat (bench/README.md, "Soak").
SOAK_ATTEMPTS ?= 10000
soak:
	$(GO) test -tags soak -count=1 -timeout 15m -run '^TestSoak' -v ./rtsp/ ./uplink/ -args -soak.attempts=$(SOAK_ATTEMPTS)

# Static, stripped binaries for the gateways; MIPS must be softfloat (MT7621 has no FPU).
cross:
	@mkdir -p $(BIN)
	GOOS=linux GOARCH=amd64 $(GOBUILD) -o $(BIN)/camgate-linux-amd64 ./cmd/camgate
	GOOS=linux GOARCH=arm64 $(GOBUILD) -o $(BIN)/camgate-linux-arm64 ./cmd/camgate
	GOOS=linux GOARCH=arm GOARM=7 $(GOBUILD) -o $(BIN)/camgate-linux-armv7 ./cmd/camgate
	GOOS=linux GOARCH=mipsle GOMIPS=softfloat $(MAKE) --no-print-directory build BIN=$(BIN) TAGS="$(TAGS) nodemo" GCFLAGS='$(ROUTER_GCFLAGS)' OUT=camgate-linux-mipsle
	@for f in $(BIN)/camgate-linux-*; do printf '%-32s %6.2f MiB\n' $$f $$(echo "$$(stat -c %s $$f) / 1048576" | bc -l); done

# Every package has a doc.go (DESIGN.md). The browser test is its own module (see test): ./...
# does not reach it, so it is linted on its own.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	@missing=$$(for d in $$($(GO) list -f '{{.Dir}}' ./...) agent/web/browsertest; do \
		test -f $$d/doc.go || echo $$d; done); \
		test -z "$$missing" || { echo "no doc.go (what the package is for, what it must not do):"; \
		echo "$$missing"; exit 1; }
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GOLANGCI_LINT) run ./...
	cd agent/web/browsertest && $(GO) vet ./... && $(STATICCHECK) ./... && \
		$(GOLANGCI_LINT) run --config ../../../.golangci.yml ./...

package:
	bash packaging/build.sh

package-test:
	bash packaging/test.sh

clean:
	rm -rf $(BIN) dist
