"""pytest plugin (`-p ember_server_suite`) for build-support/check-server-suite.

Runs llama.cpp's own server tests (vendor/llama.cpp/tools/server/tests) offline, against the
local test model, and records each test's outcome where a killed run still leaves it:

- Every server a test starts serves EMBER_SERVER_SUITE_MODEL: the suite names its models by
  Hugging Face repository (`--hf-repo`/`--hf-file`) or URL (`--model-url`), which this
  machine cannot reach, so those are replaced by the local file just before the launch; a
  test that already names a local file keeps it. ServerPreset.load_all(), which only starts
  each preset once to download its model, does nothing.
- A per-test time limit (EMBER_SERVER_SUITE_TEST_TIMEOUT seconds, SIGALRM, as pytest-timeout's
  signal method; the suite does not use pytest-timeout and we add no dependency for it). On
  expiry the test's servers are stopped first: a test waiting in a thread pool on a hung
  request would otherwise keep the executor's shutdown waiting for the suite's 600 s request
  timeout.
- With EMBER_SERVER_SUITE_ONLY (the baseline file), only the tests it lists run; with
  EMBER_SERVER_SUITE_SKIPS, the ones insightd leaves out by design are skipped with the reason.
- One JSON line per test in EMBER_SERVER_SUITE_RESULTS, written as soon as the test ends:
  its outcome, the first failing phase's message, every answer of utils.ServerProcess's
  requests that was not 2xx (method, path, status, error type and message), and the flags the
  launcher dropped (EMBER_SERVER_SUITE_DROPPED, written by insightd-as-llama-server).
"""

import json
import os
import signal

import pytest

MODEL = os.environ.get("EMBER_SERVER_SUITE_MODEL", "")
ONLY = os.environ.get("EMBER_SERVER_SUITE_ONLY", "")
SKIPS = os.environ.get("EMBER_SERVER_SUITE_SKIPS", "")
TEST_TIMEOUT = float(os.environ.get("EMBER_SERVER_SUITE_TEST_TIMEOUT", "60"))
RESULTS = os.environ.get("EMBER_SERVER_SUITE_RESULTS", "")
DROPPED = os.environ.get("EMBER_SERVER_SUITE_DROPPED", "")

_utils = None
_starting = False  # inside ServerProcess.start: its /health polling is not the test's requests
_http: list[str] = []
_reports: dict[str, list] = {}


def _error_of(body) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return f"{err.get('type', '')}: {str(err.get('message', ''))[:160]}"
        return str(err)[:160]
    return str(body)[:160].replace("\n", " ")


def _note(method: str, path: str, status, body) -> None:
    if _starting:
        return
    line = f"{method} {path.split('?', 1)[0]} -> {status} {_error_of(body)}".rstrip()
    if line not in _http and len(_http) < 20:
        _http.append(line)


def pytest_configure(config):
    global _utils, DROPPED
    # Under pytest-xdist each worker runs its own servers: a port and a dropped-flags file of
    # its own (the suite's utils.py reads PORT for every server it makes).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        index = int(worker.removeprefix("gw"))
        os.environ["PORT"] = str(int(os.environ.get("PORT", "8080")) + 1 + index)
        if DROPPED:
            DROPPED = f"{DROPPED}-{worker}"
            os.environ["EMBER_SERVER_SUITE_DROPPED"] = DROPPED
    if not MODEL or not os.path.isfile(MODEL):
        raise pytest.UsageError(f"EMBER_SERVER_SUITE_MODEL is not a file: {MODEL!r}")
    import utils  # the suite's own, from its directory (on PYTHONPATH, as conftest.py sees it)

    _utils = utils
    server_process = utils.ServerProcess
    original_start = server_process.start

    def start(self, *args, **kwargs):
        global _starting
        if self.model_hf_repo or self.model_hf_file or self.model_url:
            self.model_file = MODEL
            self.model_hf_repo = self.model_hf_file = self.model_url = None
        _starting = True
        try:
            return original_start(self, *args, **kwargs)
        finally:
            _starting = False

    original_request = server_process.make_request

    def make_request(self, method, path, *args, **kwargs):
        try:
            res = original_request(self, method, path, *args, **kwargs)
        except Exception as e:
            _note(method, path, type(e).__name__, str(e))
            raise
        if not 200 <= res.status_code < 300:
            _note(method, path, res.status_code, res.body)
        return res

    original_stream = server_process.make_stream_request

    def make_stream_request(self, method, path, *args, **kwargs):
        try:
            yield from original_stream(self, method, path, *args, **kwargs)
        except utils.ServerError as e:
            _note(method, path, e.code, e.body)
            raise
        except Exception as e:
            _note(method, path, type(e).__name__, str(e))
            raise

    server_process.start = start
    server_process.make_request = make_request
    server_process.make_stream_request = make_stream_request
    # Nothing to download: the one model is local.
    utils.ServerPreset.load_all = staticmethod(lambda: None)


def pytest_collection_modifyitems(config, items):
    """With EMBER_SERVER_SUITE_ONLY (a file of node ids, `#` comments), run only those; with
    EMBER_SERVER_SUITE_SKIPS (`prefix|why` lines), skip the tests whose id starts with a prefix,
    "by design: why"."""
    if SKIPS:
        with open(SKIPS) as f:
            skips = [line.rstrip("\n").split("|", 1) for line in f if "|" in line]
        for item in items:
            for prefix, why in skips:
                if item.nodeid.startswith(prefix):
                    item.add_marker(pytest.mark.skip(reason=f"by design: {why}"))
    if not ONLY:
        return
    with open(ONLY) as f:
        wanted = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    keep = [item for item in items if item.nodeid in wanted]
    left = [item for item in items if item.nodeid not in wanted]
    if left:
        config.hook.pytest_deselected(items=left)
    items[:] = keep


def _stop_servers() -> None:
    for server in list(_utils.server_instances if _utils else []):
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort before failing the test
            pass


def _limited(phase: str):
    def expired(signum, frame):  # noqa: ARG001
        _stop_servers()
        pytest.fail(f"ember: test {phase} ran past {TEST_TIMEOUT:g} s "
                    "(EMBER_SERVER_SUITE_TEST_TIMEOUT)", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    return previous


def _unlimit(previous) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    previous = _limited("setup")
    try:
        yield
    finally:
        _unlimit(previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    previous = _limited("call")
    try:
        yield
    finally:
        _unlimit(previous)


def _message(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return str(report.longrepr[2])
    return str(report.longrepr or "")


def pytest_runtest_logreport(report):
    if getattr(report, "node", None) is not None:
        return  # xdist's controller: the worker that ran the test records it
    _reports.setdefault(report.nodeid, []).append(report)
    if report.when != "teardown":
        return
    reports = _reports.pop(report.nodeid)
    failed = [r for r in reports if r.failed]
    skipped = [r for r in reports if r.skipped]
    if failed:
        outcome, message = "failed", _message(failed[0])
        if failed[0].when != "call":
            message = f"[{failed[0].when}] {message}"
    elif skipped:
        outcome, message = "skipped", _message(skipped[0])
    else:
        outcome, message = "passed", ""
    dropped: list[str] = []
    if DROPPED and os.path.exists(DROPPED):
        with open(DROPPED) as f:
            dropped = sorted({line.strip() for line in f if line.strip()})
        os.unlink(DROPPED)
    record = {
        "nodeid": report.nodeid,
        "outcome": outcome,
        "duration": round(sum(r.duration for r in reports), 2),
        "message": message[:1500],
        "http": list(_http),
        "dropped": dropped,
    }
    _http.clear()
    if RESULTS:
        with open(RESULTS, "a") as f:
            f.write(json.dumps(record) + "\n")
