"""Stands in for PyPI's `wget` while build-support/check-server-suite runs llama.cpp's server tests.

The suite's utils.py imports `wget` at the top for its download_file() helper. `wget` 3.2 is
only a source distribution (no wheel to pin by hash with --only-binary), and nothing here may
download: this machine reaches the package registries only, not Hugging Face or GitHub. So a
test that downloads fails, with this message, instead of the whole suite failing to import.
"""


def download(url, out=None, bar=None):  # noqa: ARG001 - wget.download's signature
    raise RuntimeError(
        f"no download of {url}: build-support/check-server-suite runs offline "
        "(build-support/server-suite/wget.py stands in for the wget package)"
    )
