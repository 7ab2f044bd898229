#!/usr/bin/env python3
"""Render the chart's defaults into k8s/samplesize.yaml, for users without Helm.

    scripts/render_k8s.py          # rewrite k8s/samplesize.yaml
    scripts/render_k8s.py --check  # exit 1 if k8s/ differs from the chart

The file is the chart's default render (release "sweep") with the values the
chart requires filled by placeholders (PLACEHOLDERS below), without the
`helm test` pod (a plain `kubectl apply` would start it at once, before any
report exists). The placeholders fail loudly and at once if left unedited:
the image REGISTRY/samplesize is an invalid reference (the kubelet reports
InvalidImageName), and gs://BUCKET/... is not a valid bucket name (uppercase),
so every samplesize command exits 64 naming `output`; no one can own either.
Since the chart's schema refuses that bucket name too, the render skips the
schema (the templates' own checks still run). No object carries a namespace,
so `kubectl apply -n <ns> -f k8s/` works anywhere.
The comparison is on parsed YAML, so helm v3 and v4 agree.
Helm comes from $HELM, .tools/bin/helm (scripts/install_helm.sh) or PATH.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "samplesize"
OUT = REPO / "k8s" / "samplesize.yaml"
RELEASE = "sweep"
KUBE_VERSION = "1.33.0"  # the floor in Chart.yaml's kubeVersion
# Required values, as placeholders that fail at once until edited (see above).
PLACEHOLDERS = (
    "image.repository=REGISTRY/samplesize",
    "sweep.output=gs://BUCKET/sweeps/demo",
    "gpu.accelerator=nvidia-l4",
)
HEADER = """\
# Generated from charts/samplesize with its default values (release "sweep") and
# placeholders for the required ones: scripts/render_k8s.py runs
#   helm template sweep charts/samplesize --skip-tests --kube-version 1.33.0 \\
#     --skip-schema-validation --set image.repository=REGISTRY/samplesize \\
#     --set sweep.output=gs://BUCKET/sweeps/demo --set gpu.accelerator=nvidia-l4
# Do not edit here; change the chart and re-render. To run your own sweep
# without Helm, copy this file and edit: REGISTRY/samplesize (both Jobs),
# gs://BUCKET/... (the ConfigMap's sweep.yaml `output`), the GPU type
# (cloud.google.com/gke-accelerator), and the trials Job's `completions` if you
# change splits or repetitions: (len(splits) + len(backtest_splits)) x repetitions.
# Left unedited, the image fails with InvalidImageName and every command exits
# 64 naming `output`.
#   kubectl apply -n <namespace> -f my-sweep.yaml
"""


def find_helm() -> str | None:
    """$HELM, then .tools/bin/helm (scripts/install_helm.sh), then PATH; None when absent."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    local = REPO / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


def render(helm: str | None = None) -> str:
    # --kube-version: offline, helm 3.17 assumes v1.32, below the chart's floor.
    helm = helm or find_helm()
    if helm is None:
        sys.exit("helm not found: run scripts/install_helm.sh (puts it in .tools/bin/helm)")
    cmd = [helm, "template", RELEASE, str(CHART), "--skip-tests", "--kube-version", KUBE_VERSION,
           "--skip-schema-validation"]
    for value in PLACEHOLDERS:
        cmd += ["--set", value]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return HEADER + "---\n" + out.lstrip("-\n").rstrip() + "\n"


def documents(text: str) -> list:
    return [d for d in yaml.safe_load_all(text) if d]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when out of sync")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.is_file() else ""
        if documents(current) != documents(text):
            print(f"{OUT.relative_to(REPO)} is out of sync with charts/samplesize; run scripts/render_k8s.py",
                  file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(REPO)} matches the chart's default render")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
