{{/*
The chart name, or nameOverride.
*/}}
{{- define "samplesize.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name. Truncated to 52 characters so that
"<fullname>-aggregate" stays a valid label value (the Job controller copies
the Job name into the pods' job-name label, limited to 63 characters).
*/}}
{{- define "samplesize.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "samplesize.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels on every object.
*/}}
{{- define "samplesize.labels" -}}
helm.sh/chart: {{ include "samplesize.chart" . | quote }}
{{ include "samplesize.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/part-of: samplesize
{{- end }}

{{/*
Labels that identify this release's pods (kubectl logs -l ...).
*/}}
{{- define "samplesize.selectorLabels" -}}
app.kubernetes.io/name: {{ include "samplesize.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{/*
Object names.
*/}}
{{- define "samplesize.trialsJobName" -}}
{{- printf "%s-trials" (include "samplesize.fullname" .) }}
{{- end }}

{{- define "samplesize.aggregateJobName" -}}
{{- printf "%s-aggregate" (include "samplesize.fullname" .) }}
{{- end }}

{{- define "samplesize.configMapName" -}}
{{- printf "%s-config" (include "samplesize.fullname" .) }}
{{- end }}

{{- define "samplesize.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-trials" (include "samplesize.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "samplesize.aggregateServiceAccountName" -}}
{{- $sa := .Values.aggregate.serviceAccount }}
{{- if $sa.create }}
{{- default (printf "%s-aggregate" (include "samplesize.fullname" .)) $sa.name }}
{{- else }}
{{- required "aggregate.serviceAccount.name is required when aggregate.serviceAccount.create is false" $sa.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when image.digest is set (a digest
names one image for the whole sweep, a tag may move), else repository:tag with
the tag defaulting to the chart's appVersion.
*/}}
{{- define "samplesize.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Number of trials: every split (fitted and backtest) times the repetitions,
times the variants when there are any. Must match SweepConfig.trial_count in
job/samplesize/config.py.
*/}}
{{- define "samplesize.completions" -}}
{{- $s := .Values.sweep }}
{{- mul (add (len $s.splits) (len (default (list) $s.backtest_splits))) (int $s.repetitions) (max 1 (len (default (list) $s.variants))) }}
{{- end }}

{{/*
The path every samplesize container reads its config from.
*/}}
{{- define "samplesize.configPath" -}}
/etc/samplesize/sweep.yaml
{{- end }}

{{/*
Environment shared by every samplesize container: the root filesystem is
read-only, so everything that caches (Keras weights, matplotlib, XDG caches)
points under the /tmp emptyDir. Same values as the Dockerfile's ENV, repeated
here so that an image built on another base still gets them.
*/}}
{{- define "samplesize.env" -}}
- name: HOME
  value: /tmp
- name: KERAS_HOME
  value: /tmp/keras
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: PYTHONUNBUFFERED
  value: "1"
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes and mounts shared by every samplesize pod: the one ConfigMap and /tmp.
*/}}
{{- define "samplesize.volumes" -}}
{{- $root := .root }}
- name: config
  configMap:
    name: {{ include "samplesize.configMapName" $root | quote }}
    items:
      - key: sweep.yaml
        path: sweep.yaml
- name: tmp
  {{- if or $root.Values.tmp.medium .sizeLimit }}
  emptyDir:
    {{- with $root.Values.tmp.medium }}
    medium: {{ . | quote }}
    {{- end }}
    {{- with .sizeLimit }}
    sizeLimit: {{ . | quote }}
    {{- end }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}

{{/*
Container resources with an ephemeral-storage request equal to the /tmp
emptyDir's size limit, unless set already: GKE Autopilot requests 1 GiB when
none is given and evicts a pod that writes more. A Memory-backed /tmp counts
against memory instead. Takes (dict "resources" R "sizeLimit" S "root" $).
*/}}
{{- define "samplesize.resources" -}}
{{- $res := deepCopy (.resources | default dict) }}
{{- if and .sizeLimit (ne .root.Values.tmp.medium "Memory") }}
{{- $requests := get $res "requests" | default dict }}
{{- if not (hasKey $requests "ephemeral-storage") }}
{{- $_ := set $requests "ephemeral-storage" .sizeLimit }}
{{- end }}
{{- $_ := set $res "requests" $requests }}
{{- end }}
{{- toYaml $res }}
{{- end }}

{{- define "samplesize.volumeMounts" -}}
- name: config
  mountPath: /etc/samplesize
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
Pod annotation that changes with the config: the Job pod templates are
immutable, so `helm upgrade` with a different sweep fails loudly instead of
letting running trials pick up a new config halfway through a sweep.
*/}}
{{- define "samplesize.configChecksum" -}}
checksum/config: {{ include "samplesize.sweepYaml" . | sha256sum | quote }}
{{- end }}
