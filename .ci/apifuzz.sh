#!/usr/bin/env bash
# API fuzzing: schemathesis (PyPI) generates requests for every operation of the platform's own
# OpenAPI description (GET /api/v1/api-docs) and sends them to a standalone platform as the guest
# user. Fails on any 5xx (but an invocation's documented 502), a response that breaks the
# description (status, content type, schema, headers), an error body that is not OpenWhisk's
# {"error", "code"}, a request that hangs past --request-timeout, or a platform that crashed or
# panicked. Bounded: a fixed seed and a fixed number of examples per operation.
#
#   .ci/apifuzz.sh [EXAMPLES]    (default 15 examples per operation; .ci/run uses the default)
#
# Env: WHISK_TOOLS (tools directory), WHISK_STANDALONE (the binary, default
# target/debug/whisk-standalone), WHISK_APIFUZZ_SEED (default 20261127).
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES="${1:-15}"
SEED="${WHISK_APIFUZZ_SEED:-20261127}"
BIN="${WHISK_STANDALONE:-target/debug/whisk-standalone}"
GUEST="23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"

# schemathesis, pinned, installed once into the tools directory.
VERSION=4.32.5
TOOLS="${WHISK_TOOLS:-$HOME/.cache/whisk-tools}"
VENV="$TOOLS/schemathesis"
if ! "$VENV/bin/st" --version 2>/dev/null | grep -qF "$VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$VERSION"
fi

[ -x "$BIN" ] || { echo "apifuzz: $BIN is missing (cargo build --bin whisk-standalone)"; exit 1; }
WORK="$(mktemp -d)"
PLATFORM_PID=""
cleanup() {
  if [ -n "$PLATFORM_PID" ]; then kill "$PLATFORM_PID" 2>/dev/null || true; wait "$PLATFORM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The platform on a free loopback port with its own data directory. Throttles are raised so
# that the fuzzer reaches the invoke and fire paths instead of 429; the drain is short.
"$BIN" --port 0 --data-dir "$WORK/data" --invokes-per-minute 1000000 \
  --fires-per-minute 1000000 --no-prewarm --user-memory 1024 --drain-timeout 5 \
  >"$WORK/platform.out" 2>"$WORK/platform.log" &
PLATFORM_PID=$!
URL=""
for _ in $(seq 1 200); do
  URL="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/platform.out" 2>/dev/null | head -1 || true)"
  [ -n "$URL" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$URL/invokers/ready" 2>/dev/null && break
  URL=""
  sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/platform.log"; echo "apifuzz: the platform did not become ready"; exit 1; }
echo "apifuzz: schemathesis $VERSION against $URL, $EXAMPLES examples per operation, seed $SEED"

# One worker: with two, hypothesis failed inside its own code (CPython 3.11's ast.parse is not
# thread-safe). The key is the real guest key, so security parameters are not generated.
status=0
SCHEMATHESIS_HOOKS="$PWD/.ci/apifuzz_hooks.py" WHISK_APIFUZZ_COUNT="$WORK/count" \
  HYPOTHESIS_STORAGE_DIRECTORY="$WORK/hypothesis" \
  timeout 900 "$VENV/bin/st" --config-file .ci/apifuzz.toml run "$URL/api/v1/api-docs" \
  --url "$URL" --auth "$GUEST" --checks all --max-examples "$EXAMPLES" --seed "$SEED" \
  --generation-database none --generation-with-security-parameters false \
  --request-timeout 70 --workers 1 --no-color --warnings off || status=$?

if ! kill -0 "$PLATFORM_PID" 2>/dev/null; then
  echo "apifuzz: the platform exited during the run:"; tail -50 "$WORK/platform.log"; status=1
elif grep -q "panicked" "$WORK/platform.log"; then
  echo "apifuzz: the platform panicked:"; grep -A5 "panicked" "$WORK/platform.log" | head -40; status=1
fi
echo "apifuzz: $(cat "$WORK/count" 2>/dev/null || echo 0) requests tried; exit status $status"
exit "$status"
