"""schemathesis hooks of the API fuzzing run (`.ci/apifuzz.sh`).

- `openwhisk_error_body`: a check that every error response the platform itself makes has
  OpenWhisk's body, `{"error": "<message>", "code": "<transaction id>"}`, with `code` equal
  to the response's `X-Request-ID`.
- The feed provider's endpoint is fuzzed with the alarms feeds only: the Kafka and CouchDB
  sources connect to the brokers and URLs their parameters name, and this run talks to
  loopback only.
- Every request sent is counted; the total is written to `$WHISK_APIFUZZ_COUNT` at exit.
"""

import atexit
import json
import os
import threading

import schemathesis

_lock = threading.Lock()
_sent = 0

# Sources of the feed provider that reach the network.
_NETWORK_FEEDS = {"messaging", "cloudant"}


def _count():
    global _sent
    with _lock:
        _sent += 1


@schemathesis.hook
def after_call(context, case, response):
    _count()


@schemathesis.hook
def after_network_error(context, case, request):
    _count()


@atexit.register
def _write_count():
    path = os.environ.get("WHISK_APIFUZZ_COUNT")
    if path:
        with open(path, "w") as f:
            f.write(f"{_sent}\n")


def _is_feed_call(case):
    return case.operation.path.startswith("/api/v1/feeds/")


@schemathesis.hook
def before_call(context, case, kwargs):
    # The last guard before the wire: whatever phase made the case, a feed request goes to a
    # source that stays on this machine.
    if _is_feed_call(case):
        package = str((case.path_parameters or {}).get("package", ""))
        if package.strip().lower() in _NETWORK_FEEDS:
            case.path_parameters = {**case.path_parameters, "package": "alarms"}


@schemathesis.check
def openwhisk_error_body(ctx, response, case):
    """4xx and 5xx made by the platform carry OpenWhisk's error body."""
    if response.status_code < 400 or response.request.method == "HEAD":
        return None
    headers = response.headers
    # An invocation's 502/500 is the activation, and a web action's response is the action's.
    if "x-openwhisk-activation-id" in headers:
        return None
    # OpenWhisk's readiness answer: 500 {"unhealthy": "k/m"}.
    if case.operation.path == "/invokers/ready":
        return None
    content_type = ";".join(headers.get("content-type", []))
    assert content_type.startswith("application/json"), (
        f"error {response.status_code} is {content_type!r}, not JSON"
    )
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"error {response.status_code} body is not JSON: {e}") from e
    assert isinstance(body, dict) and isinstance(body.get("error"), str), (
        f"error {response.status_code} body has no 'error' string: {body!r}"
    )
    assert isinstance(body.get("code"), str), f"error body has no 'code' string: {body!r}"
    tid = headers.get("x-request-id", [None])[0]
    assert body["code"] == tid, f"'code' {body['code']!r} is not X-Request-ID {tid!r}"
    return None
