{{- define "delivery.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "delivery.labels" -}}
{{ include "delivery.selector" . }}
app.kubernetes.io/version: {{ .Values.slipway.version | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slipway
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end }}

{{- /* The release inventory: who owns what is running, which release put it there, and which exact image. */}}
{{- define "delivery.annotations" -}}
slipway.dev/owner: {{ .Values.slipway.owner | quote }}
slipway.dev/release: {{ .Values.slipway.release | quote }}
slipway.dev/environment: {{ .Values.slipway.environment | quote }}
slipway.dev/digest: {{ .Values.image.digest | quote }}
{{- end }}

{{- define "delivery.image" -}}
{{ required "image.repository is set by slipway" .Values.image.repository }}@{{ required "image.digest is set by slipway" .Values.image.digest }}
{{- end }}
