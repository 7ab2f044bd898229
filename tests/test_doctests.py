"""The examples in the public entry points' docstrings run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

# Modules whose docstrings carry runnable examples.
EXAMPLES = ["samplesize.curves.fit", "samplesize.curves.gains", "samplesize.curves.collection", "samplesize.plan",
            "samplesize.data.dicom"]


@pytest.mark.parametrize("module", EXAMPLES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{module} has no example to run"
    assert result.failed == 0
