{{/*
Object names are fixed, not derived from the release name: the operator and
its admission policies look for one another by these names, and a
cluster has one aws-auth, so one install.
*/}}
{{- define "aws-auth-guardian.serviceAccountName" -}}
aws-auth-guardian-controller-manager
{{- end }}

{{/*
The operator's identity as admission policies see it. The policies in
files/policy name the default namespace, aws-auth-guardian-system; they are
rendered with every mention of it replaced by the release namespace, this
username included.
*/}}
{{- define "aws-auth-guardian.username" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "aws-auth-guardian.serviceAccountName" . }}
{{- end }}

{{- define "aws-auth-guardian.selectorLabels" -}}
app.kubernetes.io/name: aws-auth-guardian
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aws-auth-guardian.labels" -}}
{{ include "aws-auth-guardian.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
The metrics port: https 8443 with --metrics-secure (metrics.secure), else
http 8080. The ServiceMonitor scrapes it by name.
*/}}
{{- define "aws-auth-guardian.metricsPort" -}}
{{ ternary "https" "http" .Values.metrics.secure }}
{{- end }}

{{- define "aws-auth-guardian.metricsPortNumber" -}}
{{ ternary 8443 8080 .Values.metrics.secure }}
{{- end }}

{{- define "aws-auth-guardian.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/*
aws-auth-guardian.fromFiles renders the manifests in files/, verbatim copies
of config/ (test/deploy fails when a copy is stale):
  root: the top-level context
  glob: the files to render, e.g. "files/rbac/*.yaml", in name order
  namespaced: replace every mention of aws-auth-guardian-system, the
    operator's default namespace, with the release namespace: object
    namespaces, binding subjects, and the operator's username and backup in
    the admission policies
  annotations: extra annotations for every object (optional)
  kindAnnotations: extra annotations by kind, e.g. ServiceAccount (optional)
  labels: extra labels for every object, e.g. the one a Prometheus
    selects its ServiceMonitors by (optional; the chart's labels win)
  configMapData: data to set, by ConfigMap name (optional)
Every object gets the chart's labels.
*/}}
{{- define "aws-auth-guardian.fromFiles" -}}
{{- $args := . -}}
{{- $root := .root -}}
{{- $files := $root.Files.Glob .glob -}}
{{- if not $files -}}
{{- fail (printf "no file in the chart matches %s" .glob) -}}
{{- end -}}
{{- $labels := merge (include "aws-auth-guardian.labels" $root | fromYaml) (deepCopy (.labels | default dict)) -}}
{{- range $path, $_ := $files }}
{{- $text := $root.Files.Get $path }}
{{- if $args.namespaced }}
{{- $text = $text | replace "aws-auth-guardian-system" $root.Release.Namespace }}
{{- end }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $text -1 }}
{{- $obj := fromYaml $doc }}
{{- if hasKey $obj "Error" }}
{{- fail (printf "%s: %s" $path $obj.Error) }}
{{- end }}
{{- if $obj }}
{{- $meta := $obj.metadata }}
{{- $_ := set $meta "labels" (merge ($meta.labels | default dict) $labels) }}
{{- with $args.annotations }}
{{- $_ := set $meta "annotations" (merge ($meta.annotations | default dict) .) }}
{{- end }}
{{- with and $args.kindAnnotations (get $args.kindAnnotations $obj.kind) }}
{{- $_ := set $meta "annotations" (merge ($meta.annotations | default dict) .) }}
{{- end }}
{{- if and (eq $obj.kind "ConfigMap") $args.configMapData }}
{{- with get $args.configMapData $meta.name }}
{{- $_ := set $obj "data" (merge (deepCopy .) ($obj.data | default dict)) }}
{{- end }}
{{- end }}
---
# Source: {{ $path }}
{{ toYaml $obj }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
