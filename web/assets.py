"""Versioned URLs of the static files: `/static/css/site.css?v=<hash of its content>`.

The version changes whenever the file does, so NGINX (configs/nginx.conf) serves a versioned URL
with a year's `immutable` caching and an unversioned one with a short max-age. The hashes are
computed once, when the app is built: a file changed afterwards keeps its old version until the
web processes are replaced (a deploy, `kill -HUP` of `aioshop web`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

VERSION_LENGTH = 12  # hex digits of the SHA-256: plenty to tell two versions of a file apart


def versions(directory: Path) -> dict[str, str]:
    """The version of every file under `directory`, by its path relative to it (POSIX)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:VERSION_LENGTH]
            found[path.relative_to(directory).as_posix()] = digest
    return found


class StaticUrls:
    """The templates' `static(path)`: the URL of a static file, versioned when it exists."""

    def __init__(self, directory: Path, prefix: str = "/static/") -> None:
        self.prefix = prefix
        self.versions = versions(directory)

    def __call__(self, path: str) -> str:
        version = self.versions.get(path)
        url = f"{self.prefix}{path}"
        return url if version is None else f"{url}?v={version}"
