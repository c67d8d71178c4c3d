{{/* The release's name, followed by the chart's unless it already contains it. */}}
{{- define "cabildo.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cabildo.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "cabildo.secretName" -}}
{{- default (include "cabildo.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The environment every Cabildo pod shares: the cluster profile and its secrets. */}}
{{- define "cabildo.env" -}}
- name: CABILDO_PROFILE
  value: cluster
- name: CABILDO__DATA__REGISTRY
  valueFrom: {secretKeyRef: {name: {{ include "cabildo.secretName" . }}, key: registry-url}}
- name: CABILDO__AUTH__PSEUDONYM_KEY
  valueFrom: {secretKeyRef: {name: {{ include "cabildo.secretName" . }}, key: pseudonym-key}}
- name: CABILDO__VECTORS__QDRANT_API_KEY
  valueFrom: {secretKeyRef: {name: {{ include "cabildo.secretName" . }}, key: qdrant-api-key, optional: true}}
- name: CABILDO__ANSWER__OPENAI_API_KEY
  valueFrom: {secretKeyRef: {name: {{ include "cabildo.secretName" . }}, key: openai-api-key, optional: true}}
- name: CABILDO__VECTORS__QDRANT_URL
  value: {{ .Values.qdrantUrl | quote }}
- name: CABILDO__ANSWER__GENERATOR
  value: {{ .Values.answer.generator | quote }}
{{- with .Values.answer.openaiUrl }}
- name: CABILDO__ANSWER__OPENAI_URL
  value: {{ . | quote }}
{{- end }}
{{- range $k, $v := .Values.env }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}
