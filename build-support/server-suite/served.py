"""A server process for the client checks (tool_calls.py, serve_example.py): started, ready once
its /health answers 200 (within 120 s), stopped however the check ends."""

import contextlib
import subprocess
import sys
import time
import urllib.request


@contextlib.contextmanager
def served(argv, base, who, env=None):
    """Runs `argv` until the block ends; exits the check (naming `who`) when it dies or is
    not ready in time."""
    proc = subprocess.Popen(argv, env=env)
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                sys.exit(f"{who}: the server exited with {proc.returncode}")
            if time.time() > deadline:
                sys.exit(f"{who}: the server did not answer /health within 120 s")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
