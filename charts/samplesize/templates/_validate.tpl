{{/*
Checks that fail `helm install` instead of a pod on a GPU node.

values.schema.json checks each value on its own. The rules here span several
values: the required values, GPU placement, deadlines, and the cross-field
rules of job/samplesize/config.py (`_check`), mirrored with the CLI's own
message text. tests/test_chart.py feeds each bad config to both the config
loader and `helm template` and requires the same message, so the two cannot
drift. Not mirrored (they need the data or Keras): dataset contents, and
whether model.fine_tune_from names a layer of the backbone.
*/}}
{{- define "samplesize.validate" -}}
{{- $v := .Values }}
{{- $_ := required "image.repository is required: the registry path of the samplesize image you pushed, e.g. --set image.repository=us-docker.pkg.dev/PROJECT/REPO/samplesize (docs/docker.md builds it)" $v.image.repository }}
{{- $_ := required "sweep.output is required: where results and the report go, e.g. --set sweep.output=gs://BUCKET/sweeps/NAME (a bucket the service accounts can write), or an absolute path on a volume every pod mounts" $v.sweep.output }}
{{- include "samplesize.validateMemoryTmp" . }}
{{- $sharing := $v.gpu.sharing | default dict }}
{{- if and $sharing.strategy (not $v.gpu.enabled) }}
{{- fail (printf "gpu.sharing.strategy %q needs gpu.enabled=true" $sharing.strategy) }}
{{- end }}
{{- if and $sharing.strategy (ne (int $v.gpu.count) 1) }}
{{- fail (printf "gpu.sharing.strategy %q shares one GPU between pods: set gpu.count=1 (GKE refuses more than one shared nvidia.com/gpu per container), not %d" $sharing.strategy (int $v.gpu.count)) }}
{{- end }}
{{- if $v.gpu.enabled }}
{{- $selected := get ($v.nodeSelector | default dict) "cloud.google.com/gke-accelerator" }}
{{- if and (not $v.gpu.accelerator) (not $v.nodeSelector) (not $v.affinity) }}
{{- fail "gpu.accelerator is required when gpu.enabled is true: set the GPU type the trials run on, e.g. --set gpu.accelerator=nvidia-l4 (rendered as the node selector cloud.google.com/gke-accelerator, which GKE Autopilot needs to choose a GPU node); on other clusters set nodeSelector (or affinity) to your GPU nodes instead, or --set gpu.enabled=false to run the trials on CPU" }}
{{- end }}
{{- if and $v.gpu.accelerator $selected (ne $selected $v.gpu.accelerator) }}
{{- fail (printf "gpu.accelerator %q and nodeSelector cloud.google.com/gke-accelerator %q disagree; set only one" $v.gpu.accelerator $selected) }}
{{- end }}
{{- end }}
{{- $trials := $v.activeDeadlineSeconds }}
{{- $agg := $v.aggregate.activeDeadlineSeconds }}
{{- if and (not (kindIs "invalid" $trials)) (not (kindIs "invalid" $agg)) (le (int64 $agg) (int64 $trials)) }}
{{- fail (printf "aggregate.activeDeadlineSeconds (%d) must exceed activeDeadlineSeconds (%d): the aggregator waits for the trials Job, then writes the report" (int64 $agg) (int64 $trials)) }}
{{- end }}
{{- include "samplesize.checkUpgrade" . }}
{{- $sweepYaml := include "samplesize.sweepYaml" . }}
{{- include "samplesize.validateSweep" ($sweepYaml | fromYaml) }}
{{- /* Kubernetes refuses a ConfigMap whose data exceeds 1 MiB, but only once
`helm install` has created the objects before it: fail before any. The key's
name counts too. */ -}}
{{- $size := add (len $sweepYaml) (len "sweep.yaml") }}
{{- if gt $size 1048576 }}
{{- $largest := include "samplesize.largestValue" (dict "path" "sweep" "value" $v.sweep) }}
{{- fail (printf "sweep: the sweep config is %d bytes, over the 1 MiB (1048576 bytes) a Kubernetes ConfigMap may hold; shrink %s, its largest value" (int64 $size) $largest) }}
{{- end }}
{{- end }}

{{/*
The dotted path of the largest value under (dict "path" P "value" V), sized
as YAML: what to shrink when the sweep is too large for its ConfigMap.
*/}}
{{- define "samplesize.largestValue" -}}
{{- $best := "" }}
{{- $bestSize := -1 }}
{{- $bestValue := "" }}
{{- if and (kindIs "map" .value) .value }}
{{- range $k, $x := .value }}
{{- $n := len (toYaml $x) }}
{{- if gt $n $bestSize }}{{ $best = printf ".%s" $k }}{{ $bestSize = $n }}{{ $bestValue = $x }}{{ end }}
{{- end }}
{{- else if and (kindIs "slice" .value) .value }}
{{- range $i, $x := .value }}
{{- $n := len (toYaml $x) }}
{{- if gt $n $bestSize }}{{ $best = printf "[%d]" $i }}{{ $bestSize = $n }}{{ $bestValue = $x }}{{ end }}
{{- end }}
{{- end }}
{{- if eq $bestSize -1 }}{{ .path }}{{ else }}{{ include "samplesize.largestValue" (dict "path" (printf "%s%s" .path $best) "value" $bestValue) }}{{ end }}
{{- end }}

{{/*
The cross-field rules of config._check, in its order, with its messages.
Takes the converted sweep (numbers, not strings).
*/}}
{{- define "samplesize.validateSweep" -}}
{{- $s := . }}
{{- $splits := $s.splits | default list }}
{{- $backtest := $s.backtest_splits | default list }}
{{- /* Must equal config.schema.MAX_TRIALS. */ -}}
{{- $variants := $s.variants | default list }}
{{- $trials := mul (add (len $splits) (len $backtest)) (int64 $s.repetitions) (max 1 (len $variants)) }}
{{- if gt (int64 $trials) 100000 }}
{{- $per := ternary (printf " x %d variants" (len $variants)) "" (gt (len $variants) 0) }}
{{- fail (printf "repetitions: %d splits x %d repetitions%s = %d trials; at most 100000 (an Indexed Job's limit) are allowed" (add (len $splits) (len $backtest)) (int64 $s.repetitions) $per (int64 $trials)) }}
{{- end }}
{{- range $key := list "splits" "backtest_splits" }}
{{- $values := ternary $splits $backtest (eq $key "splits") }}
{{- $dupes := list }}
{{- range $i, $x := $values }}
{{- range $j, $y := $values }}
{{- if and (lt $i $j) (eq $x $y) }}{{ $dupes = append $dupes $x }}{{ end }}
{{- end }}
{{- end }}
{{- if $dupes }}
{{- fail (printf "%s: %s appear more than once; each split must be unique" $key (include "samplesize.pyFloatList" $dupes)) }}
{{- end }}
{{- end }}
{{- $both := list }}
{{- range $splits }}{{ if has . $backtest }}{{ $both = append $both . }}{{ end }}{{ end }}
{{- if $both }}
{{- fail (printf "backtest_splits: %s are also in splits; a backtest split must be left out of the fit" (include "samplesize.pyFloatList" $both)) }}
{{- end }}
{{- include "samplesize.validateModel" (dict "prefix" "" "model" ($s.model | default dict) "dataset" ($s.dataset | default dict)) }}
{{- include "samplesize.validateVariants" $s }}
{{- end }}

{{/*
config._check's model rules for one pipeline: the sweep's (prefix "") or a
variant's, with its overrides applied (prefix "variants[i] (name): ", as
job/samplesize/variants.py prefixes the CLI's message).
*/}}
{{- define "samplesize.validateModel" -}}
{{- $prefix := .prefix }}
{{- $m := .model }}
{{- $backbone := $m.backbone | default "small_cnn" }}
{{- $size := int (.dataset.image_size | default 16) }}
{{- /* Must equal APPLICATIONS[...].min_size in job/samplesize/backbones.py (a test checks each). */ -}}
{{- $minSize := dict "mobilenet_v2" 32 "mobilenet_v3_small" 32 "mobilenet_v3_large" 32 "efficientnet_b0" 32 "efficientnet_b1" 32 "efficientnet_b2" 32 "efficientnet_b3" 32 "efficientnet_v2_b0" 32 "resnet50" 32 "resnet50_v2" 32 "densenet121" 32 "convnext_tiny" 32 "inception_v3" 75 "xception" 71 }}
{{- if and (hasKey $minSize $backbone) (lt $size (int (get $minSize $backbone))) }}
{{- fail (printf "%sdataset.image_size: %d is too small for model.backbone %s; use at least %d" $prefix $size $backbone (int (get $minSize $backbone))) }}
{{- end }}
{{- /* Must say what config.checks.check_weights_loadable says (a test compares the two). */ -}}
{{- if and (eq $backbone "small_cnn") (ne (toString ($m.weights | default "none")) "none") }}
{{- fail (printf "%smodel.weights: '%s': small_cnn trains from scratch and cannot load weights; set model.weights: none, or choose a keras.applications backbone for the file" $prefix (trunc 80 (toString $m.weights))) }}
{{- end }}
{{- if and (eq $backbone "small_cnn") $m.fine_tune_from }}
{{- fail (printf "%smodel.fine_tune_from: '%s' has no meaning for small_cnn, which trains every layer in one phase; remove it or choose a keras.applications backbone" $prefix $m.fine_tune_from) }}
{{- end }}
{{- end }}

{{/*
The rules of job/samplesize/variants.py that the schema cannot express: unique
names, and each variant's model rules on the sweep with its overrides.
*/}}
{{- define "samplesize.validateVariants" -}}
{{- $s := . }}
{{- $seen := dict }}
{{- range $i, $v := $s.variants | default list }}
{{- if hasKey $seen $v.name }}
{{- fail (printf "variants[%d].name: '%s' is also the name of variants[%d]; names must be unique" $i $v.name (get $seen $v.name)) }}
{{- end }}
{{- $_ := set $seen $v.name $i }}
{{- end }}
{{- range $i, $v := $s.variants | default list }}
{{- $model := merge (deepCopy ($v.model | default dict)) (deepCopy ($s.model | default dict)) }}
{{- $dataset := merge (deepCopy ($v.dataset | default dict)) (deepCopy ($s.dataset | default dict)) }}
{{- include "samplesize.validateModel" (dict "prefix" (printf "variants[%d] (%s): " $i $v.name) "model" $model "dataset" $dataset) }}
{{- end }}
{{- end }}

{{/*
A list of numbers as Python prints a sorted list of floats: [0.5, 1.0].
Sorted by rank (the values are distinct), so messages match the CLI's.
*/}}
{{- define "samplesize.pyFloatList" -}}
{{- $values := uniq . }}
{{- $out := list }}
{{- range $rank, $_ := $values }}
{{- range $x := $values }}
{{- $below := 0 }}
{{- range $y := $values }}{{ if lt (float64 $y) (float64 $x) }}{{ $below = add1 $below }}{{ end }}{{ end }}
{{- if eq $below $rank }}{{ $out = append $out (include "samplesize.pyFloat" $x) }}{{ end }}
{{- end }}
{{- end }}
{{- printf "[%s]" (join ", " $out) }}
{{- end }}

{{/* One number as Python's repr of a float prints it: 1 -> 1.0, 0.05 -> 0.05. */}}
{{- define "samplesize.pyFloat" -}}
{{- $x := float64 . }}
{{- if eq $x (floor $x) }}{{ printf "%.1f" $x }}{{ else }}{{ printf "%v" $x }}{{ end }}
{{- end }}

{{/*
The sweep as sweep.yaml holds it: `--set` passes decimals as strings
(--set sweep.splits={0.1,0.2}), so every numeric key that may be fractional
becomes a number here. The schema has already checked each string is a
decimal in range.
*/}}
{{- define "samplesize.sweepYaml" -}}
{{- $s := deepCopy .Values.sweep }}
{{- /* `--set sweep.name=2024` arrives as a number; the CLI reads it as the text it is. */ -}}
{{- if hasKey $s "name" }}{{ $_ := set $s "name" (toString $s.name) }}{{ end }}
{{- range $key := list "splits" "backtest_splits" "targets" }}
{{- if hasKey $s $key }}
{{- $numbers := list }}
{{- range (get $s $key | default list) }}{{ $numbers = append $numbers (float64 .) }}{{ end }}
{{- $_ := set $s $key $numbers }}
{{- end }}
{{- end }}
{{- range $section, $keys := dict "dataset" (list "test_fraction") "model" (list "dropout") "training" (list "learning_rate" "fine_tune_learning_rate" "validation_fraction") "collection" (list "label_cost" "miss_cost" "max_step" "assurance") }}
{{- range $v := $s.variants | default list }}
{{- $d := get $v $section }}
{{- if kindIs "map" $d }}
{{- range $keys }}
{{- if and (hasKey $d .) (kindIs "string" (get $d .)) }}
{{- $_ := set $d . (float64 (get $d .)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $d := get $s $section }}
{{- if kindIs "map" $d }}
{{- range $keys }}
{{- if and (hasKey $d .) (kindIs "string" (get $d .)) }}
{{- $_ := set $d . (float64 (get $d .)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $s }}
{{- end }}

{{/*
What a Job keeps from its creation, as JSON, in its annotation
samplesize/immutable: Kubernetes refuses to change a Job's pod template,
completions and backoffLimitPerIndex, so `helm upgrade` compares these with
the running Job's annotation and fails first, naming the values, instead of
the API server's "field is immutable" after some objects were updated.
Hashes are cut to 16 hex digits: they only need to tell a change.
Takes (dict "root" $ "job" "trials"|"aggregate").
*/}}
{{- define "samplesize.fixedAtCreation" -}}
{{- $r := .root }}
{{- $f := dict "sweep" (include "samplesize.sweepYaml" $r | sha256sum | trunc 16) "image" (include "samplesize.image" $r) }}
{{- if eq .job "trials" }}
{{- $_ := set $f "pods" (include "samplesize.trialsPodTemplate" $r | sha256sum | trunc 16) }}
{{- $_ := set $f "completions" (include "samplesize.completions" $r) }}
{{- $_ := set $f "backoffLimitPerIndex" (toString (int64 $r.Values.backoffLimitPerIndex)) }}
{{- else }}
{{- $_ := set $f "pods" (include "samplesize.aggregatePodTemplate" $r | sha256sum | trunc 16) }}
{{- end }}
{{- toJson $f }}
{{- end }}

{{/*
`helm upgrade` of a running sweep may change only what a Job allows to
change: parallelism, maxFailedIndexes, activeDeadlineSeconds,
ttlSecondsAfterFinished, aggregate.backoffLimit and
aggregate.activeDeadlineSeconds (and labels or annotations of the Jobs
themselves). Anything else fails here, before helm touches an object, with
what changed and what to do. `lookup` is empty under `helm template` and a
client-side dry run, and a Job made by an older chart has no annotation: then
the API server still refuses an immutable change on its own.
*/}}
{{- define "samplesize.checkUpgrade" -}}
{{- if .Release.IsUpgrade }}
{{- $changes := list }}
{{- range $job := list "trials" "aggregate" }}
{{- $name := ternary (include "samplesize.trialsJobName" $) (include "samplesize.aggregateJobName" $) (eq $job "trials") }}
{{- $live := lookup "batch/v1" "Job" $.Release.Namespace $name }}
{{- $was := dig "metadata" "annotations" "samplesize/immutable" "" ($live | default dict) }}
{{- if $was }}
{{- $old := $was | fromJson }}
{{- $new := include "samplesize.fixedAtCreation" (dict "root" $ "job" $job) | fromJson }}
{{- $differs := dict }}
{{- range $k, $v := $new }}
{{- if ne (toString $v) (toString (get $old $k)) }}{{ $_ := set $differs $k true }}{{ end }}
{{- end }}
{{- if hasKey $differs "sweep" }}
{{- $changes = append $changes "the sweep (sweep.*; a changed sweep needs a new sweep.output)" }}
{{- end }}
{{- if hasKey $differs "image" }}
{{- $changes = append $changes (printf "the image (%s, now %s)" (get $old "image") (get $new "image")) }}
{{- end }}
{{- if hasKey $differs "completions" }}
{{- $changes = append $changes (printf "the number of trials (%s, now %s)" (get $old "completions") (get $new "completions")) }}
{{- end }}
{{- if hasKey $differs "backoffLimitPerIndex" }}
{{- $changes = append $changes (printf "backoffLimitPerIndex (%s, now %s)" (get $old "backoffLimitPerIndex") (get $new "backoffLimitPerIndex")) }}
{{- end }}
{{- if and (hasKey $differs "pods") (not (hasKey $differs "sweep")) (not (hasKey $differs "image")) }}
{{- if eq $job "trials" }}
{{- $changes = append $changes "the trial pods (resources, gpu.*, tmp.*, env, nodeSelector, tolerations, affinity, priorityClassName, podLabels, podAnnotations, security contexts, volumes, service account)" }}
{{- else }}
{{- $changes = append $changes "the aggregator pod (aggregate.resources, aggregate.tmpSizeLimit, aggregate.nodeSelector, aggregate.tolerations, aggregate.affinity, aggregate.podLabels, aggregate.podAnnotations, env, volumes, security contexts, its service account)" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if $changes }}
{{- fail (printf "helm upgrade cannot change %s of a running sweep: Kubernetes keeps a Job's pod template, completions and backoffLimitPerIndex as they were created. An upgrade may change parallelism, maxFailedIndexes, activeDeadlineSeconds, ttlSecondsAfterFinished, aggregate.backoffLimit and aggregate.activeDeadlineSeconds. For anything else, helm uninstall and install again (trials finished at sweep.output are kept), or install the changed sweep as a new release with a new sweep.output" (join "; " (uniq $changes))) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Memory-backed /tmp (tmp.medium=Memory) is a tmpfs that counts against the
container's memory limit: a size limit at or above that limit lets /tmp alone
get the pod OOM-killed halfway through a trial. Fail at install instead, for
the trials (tmp.sizeLimit), the aggregator and the test pod
(aggregate.tmpSizeLimit).
*/}}
{{- define "samplesize.validateMemoryTmp" -}}
{{- $v := .Values }}
{{- if eq $v.tmp.medium "Memory" }}
{{- range $pod := list (dict "name" "trial" "size" $v.tmp.sizeLimit "sizeKey" "tmp.sizeLimit" "res" $v.resources "resKey" "resources")
                      (dict "name" "aggregator" "size" $v.aggregate.tmpSizeLimit "sizeKey" "aggregate.tmpSizeLimit" "res" $v.aggregate.resources "resKey" "aggregate.resources")
                      (dict "name" "test pod" "size" (ternary $v.aggregate.tmpSizeLimit "" $v.test.enabled) "sizeKey" "aggregate.tmpSizeLimit" "res" $v.test.resources "resKey" "test.resources") }}
{{- $limit := dig "limits" "memory" "" ($pod.res | default dict) }}
{{- if and $pod.size $limit }}
{{- if ge (include "samplesize.bytes" $pod.size | float64) (include "samplesize.bytes" $limit | float64) }}
{{- fail (printf "%s (%s) must be below %s.limits.memory (%s) with tmp.medium=Memory: a Memory-backed /tmp counts against the %s's memory limit, and filling it would get the pod OOM-killed; lower %s, raise the limit, or set tmp.medium=\"\" for node disk" $pod.sizeKey (toString $pod.size) $pod.resKey (toString $limit) $pod.name $pod.sizeKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Kubernetes quantity (the schema's pattern: digits, an optional fraction, and
a suffix Ki..Ei, k..E, m or an exponent) in bytes, as a decimal string.
*/}}
{{- define "samplesize.bytes" -}}
{{- $q := toString . }}
{{- $factors := dict "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "m" 1e-3 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $bytes := float64 $number }}
{{- if hasKey $factors $suffix }}
{{- $bytes = mulf $bytes (get $factors $suffix) }}
{{- else if $suffix }}
{{- /* an exponent: e3, E6 */ -}}
{{- range until (int (trimPrefix "e" (lower $suffix))) }}{{ $bytes = mulf $bytes 10.0 }}{{ end }}
{{- end }}
{{- printf "%f" $bytes }}
{{- end }}
