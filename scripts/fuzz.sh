#!/usr/bin/env bash
# Runs every fuzz target for a while: scripts/fuzz.sh DURATION (default 5s).
# `make test` runs it briefly, `make test-stress` for a minute per target.
# Seeds are in each package's testdata/fuzz/<target>/; a failure the fuzzer
# finds is written there too, so `go test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-5s}"
go="${GO:-go}"

# package target: every parser of outside input.
targets=(
	"./archive FuzzMboxRoundTrip"   # our mboxrd files
	"./archive FuzzForeignMbox"     # mbox files of mail clients (mboxo, mboxrd)
	"./archive FuzzMaildirName"     # maildir file names and flag letters
	"./archive FuzzIndexRecord"     # the sidecar's index log lines
	"./archive FuzzSidecar"         # archive.json, folders.json, index, state
	"./archive FuzzLedger"          # restore ledgers
	"./archive FuzzEscapeComponent" # folder name -> path component
	"./archive FuzzFolderNames"     # folder names -> paths: inside the root, injective
	"./archive FuzzPlainMessageID"  # the fast Message-ID scan agrees with the full header parse
	"./internal/account FuzzParseURL"
	"./internal/pop3conn FuzzReplyStream"           # POP3 server replies and message streams
	"./internal/pop3conn FuzzDotStuffingRoundTrip"  # dot-stuffing: server writer vs client reader
	"./internal/pop3server FuzzSession"            # the demo/test POP3 server's command parser
	"./internal/cli/config FuzzParse"
)

total=0
failed=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	# go test -fuzz can end with "context deadline exceeded" and no failing
	# input when -fuzztime runs out while a worker is busy with a slow input
	# (a known quirk of Go's fuzzing engine). That is a time-out of the run,
	# not a finding: try again, at most twice. A real failure always writes
	# "Failing input written to testdata/fuzz/...".
	for attempt in 1 2 3; do
		if out="$("$go" test -run='^$' -fuzz="^${name}\$" -fuzztime="$duration" "$pkg" 2>&1)"; then
			ok=1
			break
		fi
		ok=0
		if grep -q 'Failing input written' <<<"$out" || ! grep -q 'context deadline exceeded' <<<"$out"; then
			break
		fi
		printf 'fuzz: %s %s ran out of time inside an input (no failing input); again\n' "$pkg" "$name" >&2
	done
	if [ "$ok" -ne 1 ]; then
		printf '%s\n' "$out" >&2
		printf 'fuzz: %s %s FAILED\n' "$pkg" "$name" >&2
		failed=$((failed + 1))
		continue
	fi
	execs="$(printf '%s\n' "$out" | sed -n 's/.*execs: \([0-9]*\).*/\1/p' | tail -n 1)"
	execs="${execs:-0}"
	total=$((total + execs))
	printf 'fuzz: %-22s %-20s %10s execs in %s\n' "$pkg" "$name" "$execs" "$duration"
done
printf 'fuzz: %d targets ran %d executions in total\n' "${#targets[@]}" "$total"
printf 'fuzz: %d passed, %d failed\n' "$((${#targets[@]} - failed))" "$failed"
[ "$failed" -eq 0 ]
