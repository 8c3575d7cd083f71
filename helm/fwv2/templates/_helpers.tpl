{{/* Chart name, and the release-scoped name every object is prefixed with. */}}
{{- define "fwv2.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fwv2.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "fwv2.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fwv2.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fwv2
{{- end -}}

{{- define "fwv2.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fwv2.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector of one pool's pods: call with (dict "root" $ "pool" $name). */}}
{{- define "fwv2.poolSelectorLabels" -}}
{{ include "fwv2.selectorLabels" .root }}
app.kubernetes.io/component: worker
fwv2/pool: {{ .pool }}
{{- end -}}

{{- define "fwv2.poolFullname" -}}
{{- printf "%s-%s" (include "fwv2.fullname" .root) .pool | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fwv2.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fwv2.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Whether Kafka uses SASL, from the security protocol. */}}
{{- define "fwv2.kafkaSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol -}}true{{- end -}}
{{- end -}}

{{- define "fwv2.s3SecretName" -}}
{{- default (printf "%s-s3" (include "fwv2.fullname" .)) .Values.s3.existingSecret -}}
{{- end -}}

{{- define "fwv2.kafkaSaslSecretName" -}}
{{- default (printf "%s-kafka-sasl" (include "fwv2.fullname" .)) .Values.kafka.sasl.existingSecret -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: the drain time (SHUTDOWN_GRACE_S) plus the time to close the clients. */}}
{{- define "fwv2.terminationGracePeriodSeconds" -}}
{{- add (int (ceil .Values.shutdownGraceSeconds)) (int .Values.terminationExtraSeconds) -}}
{{- end -}}

{{/* Replicas a consumer group can use: at most one per partition. Call with (list $max $root). */}}
{{- define "fwv2.cappedReplicas" -}}
{{- $max := int (index . 0) -}}
{{- $partitions := int (index . 1).Values.kafka.topicPartitions -}}
{{- min $max $partitions -}}
{{- end -}}
