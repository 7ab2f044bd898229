"""samplesize: how many labelled images does a classifier need?

Trains one model on growing random subsamples of a labelled pool, fits a
learning curve to the scores on a fixed test set, and inverts it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("samplesize")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
