# mailark build and test entry points. `make test` is what CI runs (.ci/run).

GO ?= go
BIN := bin/mailark

.PHONY: all build test test-stress demo lint bench

all: build

build:
	$(GO) build -o $(BIN) ./cmd/mailark

# Every test. Integration tests start private Dovecot instances; as root they
# install Dovecot (dovecot-imapd, dovecot-pop3d) when it is missing. Then
# every fuzz target runs briefly (scripts/fuzz.sh).
test:
	$(GO) vet ./... && $(GO) test -count=1 -timeout 30m ./... && GO=$(GO) scripts/fuzz.sh 4s

# The same tests with the long-running stress cases compiled in.
test-stress:
	$(GO) test -count=1 -tags stress -timeout 60m ./... && GO=$(GO) scripts/fuzz.sh 60s

# The whole story on embedded servers: no setup, no network.
demo:
	$(GO) run ./cmd/mailark demo

# Speed and memory against the raw protocol limit and the peer tools (mbsync,
# mpop, OfflineIMAP, getmail6), at 0 and 20 ms added RTT; as root it installs
# what is missing. Prints the table and writes bench/results.md.
bench:
	$(GO) run ./bench

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt -l found unformatted files:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...
