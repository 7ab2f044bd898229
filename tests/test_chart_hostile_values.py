"""Helm values never splice into YAML (issue 24, "Bad input round 3").

Whoever installs the chart chooses the values, but a value is data: a
newline in `priorityClassName` must not give trial pods `hostPID`, and a
newline in `kueue.queueName` must not add a label to the Job. For every
string in values.yaml (and the optional ones it leaves unset), a hostile
value is rendered: either `helm template` refuses it on purpose (the schema,
or a template's `fail`), or the rendered objects, parsed, hold no injected
key and the value only as one intact string.
"""

from __future__ import annotations

import pytest
import yaml
from test_chart import REQUIRED, chart_values, deep_merge, helm, template, trials_job  # noqa: F401  (helm: fixture)

MARK = "evil"
INJECTED = ("hostPID", "hostNetwork", "injected")
# A newline and the indentation of a pod spec, both quote characters, a flow
# mapping and a list item: whatever raw splicing a template does, one of them breaks out.
HOSTILE = (f"{MARK}'\"\n      hostPID: true\n      hostNetwork: true\ninjected: {{a: 1}}\n- injected: 1 # ")
# Short enough for any length limit: only a pattern stops it.
SHORT = f"{MARK}\nhostPID: 1"

def _optional(hostile: str) -> dict:
    """Strings values.yaml leaves unset (commented out, or inside empty lists and maps): name -> values."""
    cases = {
        "sweep.dataset.data_dir": {"sweep": {"dataset": {"data_dir": hostile}}},
        "sweep.model.fine_tune_from": {"sweep": {"dataset": {"image_size": 32},
                                                 "model": {"backbone": "efficientnet_b0", "fine_tune_from": hostile}}},
        "sweep.variants[].name": {"sweep": {"variants": [{"name": hostile}, {"name": "b"}]}},
        "imagePullSecrets[].name": {"imagePullSecrets": [{"name": hostile}]},
        "env[].value": {"env": [{"name": "SAMPLESIZE_NOTE", "value": hostile}]},
        "tolerations[].key": {"tolerations": [{"key": hostile, "operator": "Exists"}]},
        "extraVolumes[].name": {"extraVolumes": [{"name": hostile, "emptyDir": {}}]},
    }
    for dotted in ("nodeSelector", "podLabels", "podAnnotations", "serviceAccount.annotations",
                   "aggregate.nodeSelector", "aggregate.podLabels", "aggregate.podAnnotations",
                   "aggregate.serviceAccount.annotations"):
        for what, tree in (("value", {"example.com/key": hostile}), ("key", {hostile: "v"})):
            for part in reversed(dotted.split(".")):
                tree = {part: tree}
            cases[f"{dotted} ({what})"] = tree
    return cases


def _string_leaves(node, path=()):
    """(path, value) of every string in a values tree; a path part is a key or a list index."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _string_leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _string_leaves(value, (*path, i))
    elif isinstance(node, str):
        yield path, node


def _with(values, path, value):
    """A copy of `values` with the leaf at `path` replaced."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(values, list):
        return [_with(v, rest, value) if i == head else v for i, v in enumerate(values)]
    return {**values, head: _with(values[head], rest, value)}


def _value_cases():
    defaults = deep_merge(chart_values(), REQUIRED)
    cases = {}
    for hostile, kind in ((HOSTILE, "long"), (SHORT, "short")):
        for path, _ in _string_leaves(defaults):
            cases[".".join(str(p) for p in path) + f" {kind}"] = (_with(defaults, path, hostile), hostile)
        for name, extra in _optional(hostile).items():
            cases[f"{name} {kind}"] = (deep_merge(defaults, extra), hostile)
    return cases


CASES = _value_cases()


def _walk(node, found):
    """Every mapping key and string in `node`, parsing sweep.yaml's text as YAML too."""
    if isinstance(node, dict):
        for key, value in node.items():
            found["keys"].append(key)
            # The ConfigMap's text holds the value escaped; what pods read is the parsed YAML.
            _walk(yaml.safe_load(value) if key == "sweep.yaml" else value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)
    elif isinstance(node, str):
        found["strings"].append(node)


def assert_not_spliced(proc, hostile=HOSTILE):
    if proc.returncode != 0:
        # Refused on purpose (schema or a template's fail), not by YAML that the value broke.
        assert "schema" in proc.stderr or "execution error" in proc.stderr, proc.stderr
        return
    found = {"keys": [], "strings": []}
    for doc in yaml.safe_load_all(proc.stdout):
        _walk(doc, found)
    assert not set(INJECTED) & {str(k) for k in found["keys"]}, "an injected key reached the rendered objects"
    spliced = [s for s in found["keys"] + found["strings"] if MARK in str(s) and hostile not in str(s)]
    assert not spliced, f"the value was cut into pieces: {spliced[:3]}"


@pytest.mark.parametrize("path", sorted(CASES))
def test_helm_values_splice_into_yaml_never_for_any_string_value(helm, tmp_path, path):  # noqa: F811
    values, hostile = CASES[path]
    assert_not_spliced(template(helm, tmp_path, values, required=False), hostile)


def test_helm_values_splice_into_yaml_never_through_priority_class_name(helm, tmp_path):  # noqa: F811
    hostile = "low\n      hostPID: true\n      hostNetwork: true"
    proc = template(helm, tmp_path, {"priorityClassName": hostile})
    assert proc.returncode != 0 and "/priorityClassName" in proc.stderr, proc.stdout[-2000:]


def test_helm_values_splice_into_yaml_never_through_the_kueue_queue_label(helm, tmp_path):  # noqa: F811
    proc = template(helm, tmp_path, {"kueue": {"queueName": "gpu\n    injected: label"}})
    assert proc.returncode != 0 and "/kueue/queueName" in proc.stderr, proc.stdout[-2000:]


def test_valid_names_labels_and_annotation_keys_still_install(helm, tmp_path):  # noqa: F811
    values = {
        "nameOverride": "ss", "fullnameOverride": "flowers-sweep-1", "priorityClassName": "batch.low-priority",
        "image": {"repository": "localhost:5000/team/samplesize", "tag": "1.2.3_rc.1"},
        "kueue": {"queueName": "gpu-queue", "priorityClass": "Batch_Low.1"},
        "serviceAccount": {"name": "samplesize.trials", "annotations": {"iam.gke.io/gcp-service-account": "a@b.c"}},
        "podLabels": {"example.com/team": "Vision_1", "tier": ""},
        "podAnnotations": {"example.com/note": "any text: even\nnewlines and 'quotes'"},
        "nodeSelector": {"cloud.google.com/gke-spot": "true"},
        "tmp": {"sizeLimit": "1.5Gi"}, "aggregate": {"tmpSizeLimit": "500M"},
    }
    job = trials_job([d for d in yaml.safe_load_all(template(helm, tmp_path, values).stdout) if d])
    pod = job["spec"]["template"]
    assert pod["spec"]["priorityClassName"] == "batch.low-priority"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert pod["metadata"]["labels"]["tier"] == "" and pod["metadata"]["labels"]["example.com/team"] == "Vision_1"
    assert pod["metadata"]["annotations"]["example.com/note"] == values["podAnnotations"]["example.com/note"]
    assert pod["spec"]["containers"][0]["image"] == "localhost:5000/team/samplesize:1.2.3_rc.1"
    assert pod["spec"]["volumes"][1]["emptyDir"]["sizeLimit"] == "1.5Gi"
