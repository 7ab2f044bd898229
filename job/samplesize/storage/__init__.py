"""Where results, caches and reports live: the `Storage` interface and its backends.

`open_storage` picks the backend from the URI: `gs://bucket/prefix` is Google
Cloud Storage (`gcs`), anything else a local folder (`local`). Backends read
no environment: the command line passes `GcsOptions` in.
"""

from __future__ import annotations

from .base import GcsOptions, Storage, check_key, join_uri
from .local import LocalStorage

__all__ = ["GcsOptions", "LocalStorage", "Storage", "check_key", "join_uri", "open_storage"]


def open_storage(uri: str, gcs_options: GcsOptions | None = None) -> Storage:
    """A Storage for `uri`: gs://bucket/prefix (with `gcs_options`, default `GcsOptions()`), or a local folder path."""
    if uri.startswith("gs://"):
        from .gcs import GcsStorage  # imported lazily: the client is slow to import

        return GcsStorage(uri, gcs_options)
    return LocalStorage(uri)
