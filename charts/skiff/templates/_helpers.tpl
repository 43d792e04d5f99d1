{{/* Common names and labels. */}}
{{- define "skiff.fullname" -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "skiff.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "skiff.image" -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}


{{/* Every member's API address, comma-separated, for agents (they fail over between them),
     or tls.apiServer when one address stands in front of all members. */}}
{{- define "skiff.apiServers" -}}
{{- if .Values.tls.apiServer -}}
{{ .Values.tls.apiServer }}
{{- else -}}
{{- $root := . -}}
{{- range $i := until (int .Values.server.replicas) -}}
{{- if $i }},{{ end -}}
{{ printf "https://%s-%d.%s-peers.%s.svc:%d" (include "skiff.fullname" $root) $i (include "skiff.fullname" $root) $root.Release.Namespace (int $root.Values.server.apiPort) }}
{{- end -}}
{{- end -}}
{{- end -}}
