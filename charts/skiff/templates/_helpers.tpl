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

{{/* The API address agents and proxies use: the first member unless tls.apiServer says. */}}
{{- define "skiff.apiServer" -}}
{{- if .Values.tls.apiServer -}}
{{ .Values.tls.apiServer }}
{{- else -}}
{{ printf "https://%s-0.%s-peers.%s.svc:%d" (include "skiff.fullname" .) (include "skiff.fullname" .) .Release.Namespace (int .Values.server.apiPort) }}
{{- end -}}
{{- end -}}
