"""Write the golden summaries that tests/test_summary_golden.py holds today's code to.

Each scenario is a synthetic sweep (tests/fake_sweep.py) aggregated into a temporary folder.
Run it only on code whose summary.json is known good: `python tests/golden/make_golden.py [scenario ...]`
(every scenario when none is named).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fake_sweep import SCENARIOS, scenario_summary  # noqa: E402

if __name__ == "__main__":
    for name in sys.argv[1:] or SCENARIOS:
        with tempfile.TemporaryDirectory() as tmp:
            summary = scenario_summary(name, Path(tmp))
        (HERE / f"summary-{name}.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print("wrote", name)
