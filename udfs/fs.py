"""Files named by URI, read the same way on the driver and on executors through fsspec.

A path is either local (no scheme, or file://) or a URI (s3://, s3a://, gs://, abfss://, ...): the cloud backends
come with the `s3`, `gcs` and `azure` extras (s3fs, gcsfs, adlfs). Credentials and endpoints come from the
backend's own defaults (instance roles, environment) or from `storage.fs_options` (protocol -> keyword arguments),
which the driver passes to every task that opens a file, so nothing depends on the driver's disk.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import tempfile
from typing import Any

# Hadoop's scheme names for the same stores: fsspec backends register both (s3fs: s3, s3a), options must too.
_ALIASES = {"s3": ("s3", "s3a"), "s3a": ("s3", "s3a"), "gs": ("gs", "gcs"), "gcs": ("gs", "gcs"),
            "abfs": ("abfs", "abfss", "az"), "abfss": ("abfs", "abfss", "az"), "az": ("abfs", "abfss", "az")}
_COPIES = "refinery-remote-files"  # node-local cache of remote model files, under the temp dir


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def local_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path.removeprefix("file://")))


def configure(options: dict[str, dict[str, Any]] | None) -> None:
    """Make `options` (protocol -> keyword arguments) the defaults of every fsspec filesystem in this process."""
    if not options:
        return
    import fsspec.config

    for protocol, kwargs in options.items():
        for name in _ALIASES.get(protocol, (protocol,)):
            fsspec.config.conf.setdefault(name, {}).update(kwargs)


def _fs(uri: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as err:
        scheme = uri.split("://", 1)[0]
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "abfss": "azure",
                 "az": "azure"}.get(scheme)
        fix = f"pip install 'refinery[{extra}]'" if extra else "install the fsspec backend for it"
        raise FileNotFoundError(f"{uri}: no filesystem for {scheme}:// ({err}); {fix}") from None


def expand(pattern: str) -> list[str]:
    """Every file matching the glob, sorted: absolute local paths, or URIs with the pattern's own scheme."""
    if not is_remote(pattern):
        return sorted(p for p in glob.glob(local_path(pattern), recursive=True) if os.path.isfile(p))
    scheme = pattern.split("://", 1)[0]
    fs, path = _fs(pattern)
    matched = fs.glob(path) if glob.has_magic(path) else ([path] if fs.exists(path) else [])
    return sorted(f"{scheme}://{p}" for p in matched if fs.isfile(p))


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(local_path(path))
    fs, inner = _fs(path)
    return fs.exists(inner)


def open_binary(path: str):
    """A binary read stream of a local path or a URI (use as a context manager)."""
    if not is_remote(path):
        return open(local_path(path), "rb")
    fs, inner = _fs(path)
    return fs.open(inner, "rb")


def fingerprint(path: str) -> str:
    """What identifies the content of a file or folder: its bytes where local, the store's etag (or size and
    modification time) of every object where remote, so a hash of settings changes when a model file does."""
    digest = hashlib.sha256()
    if not is_remote(path):
        root = local_path(path)
        files = [root] if os.path.isfile(root) else sorted(
            os.path.join(d, f) for d, _, names in os.walk(root) for f in names)
        for name in files:
            digest.update(os.path.relpath(name, root).encode())
            with open(name, "rb") as handle:
                while chunk := handle.read(1 << 24):
                    digest.update(chunk)
        return digest.hexdigest()
    fs, inner = _fs(path)
    infos = fs.find(inner, detail=True) if fs.isdir(inner) else {inner: fs.info(inner)}
    for name, info in sorted(infos.items()):
        stamp = [info.get(k) for k in ("ETag", "etag", "md5Hash", "content_md5", "size", "LastModified", "mtime",
                                        "updated", "last_modified")]
        digest.update(repr((name.removeprefix(inner), stamp)).encode())
    return digest.hexdigest()


def local_copy(path: str) -> str:
    """A local path holding the file or folder: itself where local; a remote one is copied once per node and
    content (under the temp dir) for loaders that need a real file (fastText, transformers)."""
    if not is_remote(path):
        return local_path(path)
    key = hashlib.sha256(f"{path}\n{fingerprint(path)}".encode()).hexdigest()[:24]
    target = os.path.join(tempfile.gettempdir(), _COPIES, key, os.path.basename(path.rstrip("/")) or "root")
    if os.path.exists(target):
        return target
    fs, inner = _fs(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".part-", dir=os.path.dirname(target))
    try:
        fs.get(inner.rstrip("/"), os.path.join(staging, "x"), recursive=fs.isdir(inner))
        try:
            os.rename(os.path.join(staging, "x"), target)  # atomic: a concurrent task sees all or nothing
        except OSError:
            if not os.path.exists(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target



def read_text(path: str) -> str:
    """A small text file (a prompt, style or filter YAML) from a local path or a URI, read where it is needed."""
    with open_binary(str(path)) as handle:
        return handle.read().decode("utf-8")
