"""Downloads from the package registries, verified by sha256 and kept in a content-addressed cache.

The cache (`EMBER_CACHE_DIR`, default `vendor/.cache/`) holds files named by their sha256 only,
and every hit is verified again before use, so a cache shared between clean CI roots can never
hand a build anything but the pinned bytes.
"""

import hashlib
import html.parser
import os
import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def fail(tool: str, message: str) -> None:
    print(f"{tool}: error: {message}", file=sys.stderr)
    sys.exit(1)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("EMBER_CACHE_DIR") or ROOT / "vendor" / ".cache")


def cached(sha256: str) -> Path | None:
    """The cached file with this sha256, verified; None (and the bad copy removed) otherwise."""
    path = cache_dir() / sha256
    if not path.is_file():
        return None
    if sha256_of(path) == sha256:
        return path
    path.unlink()
    return None


def store(path: Path, sha256: str) -> Path:
    """Copies a verified file into the cache (atomically) and returns the cached path."""
    target = cache_dir() / sha256
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(path, partial)
    partial.rename(target)
    return target


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs += [v for k, v in attrs if k == "href" and v]


def index_url() -> str:
    """pip's index (PIP_INDEX_URL or pip.conf's index-url), else PyPI's simple index."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            import subprocess
            out = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                                 capture_output=True, text=True, timeout=30)
            url = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            url = ""
    return (url or "https://pypi.org/simple").rstrip("/") + "/"


def registry_file(tool: str, package: str, filename: str, sha256: str, dest: Path) -> Path:
    """Downloads `filename` of `package` from the PyPI simple index (PEP 503) into `dest` and
    verifies it. Unlike `pip download` of a source distribution, this builds nothing."""
    page = urllib.parse.urljoin(index_url(), package.lower().replace("_", "-") + "/")
    try:
        with urllib.request.urlopen(page, timeout=60) as resp:
            parser = _Links()
            parser.feed(resp.read().decode("utf-8", "replace"))
    except OSError as e:
        fail(tool, f"cannot read the package index {page}: {e}. Is PyPI reachable?")
    links = [urllib.parse.urljoin(page, h) for h in parser.hrefs]
    matches = [u for u in links if urllib.parse.urlparse(u).path.rsplit("/", 1)[-1] == filename]
    if not matches:
        fail(tool, f"{page} lists no {filename}")
    url = matches[0].split("#", 1)[0]
    out = dest / filename
    print(f"{tool}: downloading {filename} from {urllib.parse.urlparse(url).netloc}", flush=True)
    try:
        with urllib.request.urlopen(url, timeout=120) as resp, out.open("wb") as f:
            shutil.copyfileobj(resp, f, 1 << 20)
    except OSError as e:
        fail(tool, f"downloading {url} failed: {e}")
    actual = sha256_of(out)
    if actual != sha256:
        out.unlink()
        fail(tool, f"sha256 mismatch for {filename}: expected {sha256}, got {actual}. "
             "The registry served a different file; do not build from it.")
    return out
