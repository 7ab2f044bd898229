"""Error types and the process exit codes they map to.

The exit codes are a contract with the Helm chart's podFailurePolicy: a
configuration or data error fails the index at once (retrying cannot help),
a transient infrastructure error is retried by Kubernetes.
"""

EXIT_OK = 0  # success, or the trial's result already existed
EXIT_UNEXPECTED = 1  # a bug: Python's default for an uncaught exception
EXIT_CONFIG = 64  # bad sweep.yaml, --set value or trial index (sysexits EX_USAGE)
EXIT_DATA = 65  # unusable dataset, weights file or result files (EX_DATAERR)
EXIT_TRANSIENT = 75  # storage or network hiccup that a retry may fix (EX_TEMPFAIL)
EXIT_PERMISSION = 77  # missing bucket, denied access, read-only output (EX_NOPERM)


class SamplesizeError(Exception):
    """Base class: a failure with a message meant for the user."""

    exit_code = EXIT_UNEXPECTED


class ConfigError(SamplesizeError):
    """The configuration (or an index derived from it) is invalid."""

    exit_code = EXIT_CONFIG


class DataError(SamplesizeError):
    """The dataset, a weights file or a stored result cannot be used."""

    exit_code = EXIT_DATA


class TransientError(SamplesizeError):
    """Storage or the Kubernetes API failed in a way that a later retry may fix."""

    exit_code = EXIT_TRANSIENT


class AccessError(SamplesizeError):
    """Access refused (bucket, folder, Kubernetes RBAC), or the output cannot be written."""

    exit_code = EXIT_PERMISSION
