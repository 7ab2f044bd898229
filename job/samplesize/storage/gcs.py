"""Google Cloud Storage backend: `gs://bucket/prefix` as a `Storage`.

Keys map to object names `<prefix>/<key>`. `write_once` is a create-only
upload (`if_generation_match=0`), so a retried or duplicated pod can never
replace a finished result; the loser gets False, as locally.

Errors come out as the project's own types, so exit codes stay meaningful:

- 429, 5xx, timeouts and dropped connections are retried with the client's
  own policy (`DEFAULT_RETRY`) for up to `GcsOptions.retry_deadline`
  seconds (the CLI reads `SAMPLESIZE_GCS_RETRY_DEADLINE`, default 300),
  then raise `TransientError` (exit 75: Kubernetes retries the index).
- 401/403 and a missing bucket raise `AccessError` (exit 77) at
  once, naming the bucket and the credential in use (never a secret).

Credentials are the client's defaults (Workload Identity on GKE,
`GOOGLE_APPLICATION_CREDENTIALS` elsewhere). With `GcsOptions.emulator_host`
set (the CLI reads `STORAGE_EMULATOR_HOST`), the client talks to that
emulator anonymously.
"""

from __future__ import annotations

import contextlib
import mimetypes
import re
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY, ConditionalRetryPolicy, _should_retry, is_generation_specified

from ..errors import AccessError, ConfigError, DataError, TransientError
from .base import RETRY_DEADLINE_ENV, GcsOptions, TooLarge, check_key

MAX_REQUEST_TIMEOUT = 60.0  # seconds one HTTP request may stall (the client's own default)


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")  # as in the chart's values.schema.json


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """Split `gs://bucket/some/prefix` into ("bucket", "some/prefix")."""
    if not uri.startswith("gs://"):
        raise ConfigError(f"{uri!r} is not a gs:// URI")
    bucket, _, prefix = uri[len("gs://") :].partition("/")
    if not _BUCKET_NAME.match(bucket):
        # GCS names are lowercase; the placeholder gs://BUCKET/... in k8s/ relies on this refusal.
        raise ConfigError(
            f"{uri!r}: {bucket!r} is not a valid bucket name (3-222 lowercase letters, digits, '-', '_' or '.', "
            f"starting and ending with a letter or digit); write gs://BUCKET/PREFIX with your own bucket"
        )
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return bucket, prefix


def make_client(emulator_host: str | None = None) -> storage.Client:
    """A storage client: anonymous against an emulator, else Application Default Credentials."""
    if emulator_host:
        return storage.Client(project="samplesize-emulator", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": emulator_host})
    try:
        # project=None: object operations need no project, and requiring one would fail
        # on GKE nodes whose metadata does not expose it to the pod.
        return storage.Client(project=None)
    except auth_exceptions.DefaultCredentialsError:
        raise AccessError(
            "no Google Cloud credentials found: on GKE bind the pod's Kubernetes service account to a "
            "Google service account with Workload Identity; elsewhere set GOOGLE_APPLICATION_CREDENTIALS "
            "or run `gcloud auth application-default login`"
        ) from None


def describe_credentials(creds: object, emulator: str | None = None) -> str:
    """Who a client acts as, for error messages: an identity, never a secret."""
    if creds is None or isinstance(creds, AnonymousCredentials):
        return f"anonymous/emulator credentials ({emulator})" if emulator else "anonymous credentials"
    # Service-account, impersonated and GKE metadata credentials carry an email; the metadata
    # server's reads "default" until the first token is fetched.
    email = getattr(creds, "service_account_email", None)
    if email and email != "default":
        return f"service account {email}"
    account = getattr(creds, "account", None)
    if account:
        return f"user account {account}"
    kind = f"{type(creds).__module__}.{type(creds).__name__}"
    if email == "default":
        return f"the default service account of this node/pod ({kind})"
    return f"Application Default Credentials ({kind})"


class GcsStorage:
    """A `gs://bucket/prefix` folder, through the official google-cloud-storage client."""

    def __init__(self, uri: str, options: GcsOptions | None = None, *, client: storage.Client | None = None):
        options = options or GcsOptions()
        self.bucket_name, self.prefix = parse_gs_uri(uri)
        self.uri = f"gs://{self.bucket_name}/{self.prefix}" if self.prefix else f"gs://{self.bucket_name}"
        self.retry_deadline = float(options.retry_deadline)
        self._emulator = options.emulator_host
        self._retry = DEFAULT_RETRY.with_timeout(self.retry_deadline)
        # A create-only upload may be retried blindly: if an earlier attempt did land, the
        # retry gets 412 instead of overwriting. Without the precondition, no retry.
        self._retry_if_create_only = ConditionalRetryPolicy(self._retry, is_generation_specified, ["query_params"])
        self._timeout = min(MAX_REQUEST_TIMEOUT, self.retry_deadline)
        self._client = client or make_client(self._emulator)
        self._bucket = self._client.bucket(self.bucket_name)
        self._credentials = getattr(self._client, "_credentials", None)
        self._bucket_checked = False

    @property
    def _identity(self) -> str:
        # Read when an error is raised: GKE metadata credentials learn their email on first use.
        return describe_credentials(self._credentials, self._emulator)

    def __repr__(self) -> str:
        return f"GcsStorage({self.uri!r})"

    # -- keys -----------------------------------------------------------

    def _object_name(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob(self, key: str) -> storage.Blob:
        return self._bucket.blob(self._object_name(key))

    # -- errors ---------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str, what: str) -> Iterator[None]:
        """Translate client errors into TransientError / AccessError."""
        where = f"gs://{self.bucket_name}/{what}" if what else self.uri
        try:
            yield
        except api_exceptions.RetryError as exc:
            raise self._transient(action, where, exc.cause or exc) from None
        except (api_exceptions.Unauthorized, api_exceptions.Forbidden) as exc:
            raise AccessError(
                f"cannot {action} {where}: access denied (HTTP {int(exc.code)}) for {self._identity}; "
                f"grant it roles/storage.objectUser on the output (roles/storage.objectViewer on a dataset bucket) in bucket {self.bucket_name}"
            ) from None
        except Exception as exc:
            # Media calls re-raise a transient error as-is once retries run out (no RetryError).
            if _should_retry(exc):
                raise self._transient(action, where, exc) from None
            if isinstance(exc, auth_exceptions.GoogleAuthError):  # e.g. a 401 whose token refresh failed
                raise AccessError(
                    f"cannot {action} {where}: {self._identity} could not authenticate "
                    f"({_describe(exc)}); check Workload Identity or GOOGLE_APPLICATION_CREDENTIALS"
                ) from None
            raise

    def _transient(self, action: str, where: str, cause: BaseException) -> TransientError:
        return TransientError(
            f"cannot {action} {where}: bucket {self.bucket_name} kept failing for {self.retry_deadline:g}s of retries "
            f"(last error: {_describe(cause)}); the index will be retried. "
            f"Raise {RETRY_DEADLINE_ENV} to wait longer."
        )

    def _missing_bucket(self, action: str) -> AccessError:
        return AccessError(
            f"cannot {action} {self.uri}: bucket {self.bucket_name} does not exist, or "
            f"{self._identity} may not see it; create it or fix the output/dataset URI"
        )

    def _ensure_bucket(self) -> None:
        """Fail at once on a missing or forbidden bucket, before any work depends on it.

        GCS answers 404 for a missing bucket and for a missing object alike, so without
        this a trial would read "no result yet", train for an hour, then fail to write.
        Listing (objects.list) is probed rather than bucket metadata, which the usual
        object-level roles do not grant.
        """
        if self._bucket_checked:
            return
        with self._errors("list", self.prefix):
            try:
                pages = self._client.list_blobs(
                    self._bucket, prefix=self.prefix, max_results=1, retry=self._retry, timeout=self._timeout
                )
                list(pages)
            except api_exceptions.NotFound:
                raise self._missing_bucket("open") from None
        self._bucket_checked = True

    # -- Storage protocol -----------------------------------------------

    def write_once(self, key: str, data: bytes) -> bool:
        """Create `key` with `data`; return False, writing nothing, if it exists.

        If a create landed but its reply was lost, the retry sees 412 and this returns
        False although the stored bytes are ours; callers treat both alike ("done").
        """
        return self._create_once(key, lambda blob, **kwargs: blob.upload_from_string(data, **kwargs))

    def write_once_from_file(self, key: str, path: str) -> bool:
        """`write_once` of a local file, uploaded from disk (a large prepared dataset never sits in memory)."""
        return self._create_once(key, lambda blob, **kwargs: blob.upload_from_filename(path, **kwargs))

    def _create_once(self, key: str, upload) -> bool:
        blob = self._blob(key)
        self._ensure_bucket()
        with self._errors("write", blob.name):
            # Objects over 8 MiB go up as resumable uploads. GCS enforces the precondition
            # there too, but fake-gcs-server does not; checking first also skips uploading
            # a large cache another pod already stored.
            if blob.exists(retry=self._retry, timeout=self._timeout):
                return False
            try:
                upload(
                    blob,
                    content_type=_content_type(key),
                    if_generation_match=0,
                    retry=self._retry_if_create_only,
                    timeout=self._timeout,
                )
            except api_exceptions.PreconditionFailed:
                return False
            except api_exceptions.NotFound:
                raise self._missing_bucket("write") from None
        return True

    def write(self, key: str, data: bytes) -> None:
        """Create or replace `key` (reports). The upload is atomic: readers see old or new."""
        blob = self._blob(key)
        self._ensure_bucket()
        with self._errors("write", blob.name):
            try:
                # Retried without a precondition: rewriting the same report is harmless.
                blob.upload_from_string(data, content_type=_content_type(key), retry=self._retry, timeout=self._timeout)
            except api_exceptions.NotFound:
                raise self._missing_bucket("write") from None

    def read(self, key: str, limit: int | None = None) -> bytes:
        """Return the bytes of `key`; raise FileNotFoundError if absent, TooLarge past `limit` bytes.

        With `limit`, only the first `limit + 1` bytes are downloaded (a ranged request).
        """
        blob = self._blob(key)
        self._ensure_bucket()
        with self._errors("read", blob.name):
            try:
                data = blob.download_as_bytes(retry=self._retry, timeout=self._timeout,
                                              **({} if limit is None else {"start": 0, "end": limit}))
            except api_exceptions.NotFound:
                raise FileNotFoundError(f"gs://{self.bucket_name}/{blob.name} does not exist") from None
            except api_exceptions.RequestRangeNotSatisfiable:
                data = b""  # an empty object has no byte 0
        if limit is not None and len(data) > limit:
            raise TooLarge(f"gs://{self.bucket_name}/{blob.name}", limit)
        return data

    def open_read(self, key: str) -> BinaryIO:
        """Download `key` into an anonymous local temp file and return it, rewound.

        Readers then seek and read pieces (one array of an .npz) without holding
        the whole object in memory.
        """
        blob = self._blob(key)
        self._ensure_bucket()
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned open; the caller closes it
        try:
            with self._errors("read", blob.name):
                try:
                    blob.download_to_file(spool, retry=self._retry, timeout=self._timeout)
                except api_exceptions.NotFound:
                    raise FileNotFoundError(f"gs://{self.bucket_name}/{blob.name} does not exist") from None
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def check_writable(self, prefix: str) -> None:
        """Nothing to check up front: a probe object would be litter in the output (or cost a delete per trial).

        A denied write fails at once with exit 77 and the identity in use (see `_errors`).
        """

    def exists(self, key: str) -> bool:
        blob = self._blob(key)
        self._ensure_bucket()
        with self._errors("check", blob.name):
            return blob.exists(retry=self._retry, timeout=self._timeout)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under the folder `prefix` (recursively), sorted, relative to the root.

        A listed name that would escape the root as a key (`..`, empty parts) is refused
        with DataError: such objects are never produced by samplesize.
        """
        return [key for key, _, _ in self.list_stats(prefix)]

    def list_stats(self, prefix: str = "") -> list[tuple[str, int, str]]:
        """(key, size, generation) for each key of `list`, from the same listing: no extra request."""
        folder = prefix.rstrip("/")
        if folder:
            check_key(folder)
        full = "/".join(p for p in (self.prefix, folder) if p)
        full = full + "/" if full else ""
        root = self.prefix + "/" if self.prefix else ""
        self._ensure_bucket()
        keys = []
        with self._errors("list", full):
            try:
                for blob in self._client.list_blobs(self._bucket, prefix=full, retry=self._retry, timeout=self._timeout):
                    if blob.name.endswith("/"):
                        continue  # a "folder" placeholder made by the Cloud Console, not a file
                    key = blob.name[len(root) :]
                    try:
                        # a backslash is only a character in GCS: listed as it is, for the caller to set aside
                        # and name (a dataset's file, data/listing.py); read() still refuses it as a key
                        safe = check_key(key.replace("\\", "_"))  # '..' or empty parts: refused either way
                        keys.append((key if "\\" in key else safe, int(blob.size or 0), str(blob.generation)))
                    except DataError:
                        raise DataError(
                            f"object gs://{self.bucket_name}/{blob.name} has a name that is not a safe key under "
                            f"{self.uri} ('..', '.' or empty parts); rename or delete it"
                        ) from None
            except api_exceptions.NotFound:
                raise self._missing_bucket("list") from None
        return sorted(keys)


def _content_type(key: str) -> str:
    # Lets the Cloud Console show report.html and the PNG inline.
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def _describe(exc: BaseException) -> str:
    """A one-line summary of a client error, without the request URL's noise."""
    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "code", None)
    if isinstance(status, int):
        return f"HTTP {int(status)}"
    text = str(exc).strip()
    text = text.splitlines()[0] if text else "no detail"
    return f"{type(exc).__name__}: {text[:200]}"
