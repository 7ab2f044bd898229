"""Where results, caches and reports live: the `Storage` interface and its backends.

`open_storage` picks the backend from the URI: `gs://bucket/prefix` is Google
Cloud Storage (`gcs`), anything else a local folder (`local`). Backends read
no environment: the command line passes `GcsOptions` in.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..text import unknown_scheme
from .base import GcsOptions, Storage, TooLarge, check_key, join_uri
from .local import LocalStorage

__all__ = ["GcsOptions", "LocalStorage", "Storage", "TooLarge", "check_key", "join_uri", "open_storage"]


def open_storage(uri: str, gcs_options: GcsOptions | None = None) -> Storage:
    """Open the storage that `uri` names.

    Args:
        uri: `gs://bucket/prefix` (Google Cloud Storage) or a local folder path.
        gcs_options: retry deadline and emulator host for GCS. Defaults to `GcsOptions()`;
            the command line builds them from the environment.

    Returns:
        A `Storage`: `GcsStorage` for gs://, else `LocalStorage`.

    Raises:
        ConfigError: a gs:// URI without a bucket; another scheme (`s3://`, `GS://`, `gs:/`).
        AccessError: GCS credentials are missing or refused.
    """
    if uri.startswith("gs://"):
        from .gcs import GcsStorage  # imported lazily: the client is slow to import

        return GcsStorage(uri, gcs_options)
    refuse_unknown_scheme(uri)
    return LocalStorage(uri)


def refuse_unknown_scheme(uri: str) -> None:
    """Refuse `s3://`, `GS://`, `gs:/` and any other scheme but gs://: they would silently become local folders.

    Raises:
        ConfigError: naming the URI and the two forms allowed (`text.unknown_scheme`).
    """
    problem = unknown_scheme(uri)
    if problem:
        raise ConfigError(problem)
