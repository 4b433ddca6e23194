{{/* Names, truncated to the 63 characters a label value allows. */}}
{{- define "coffer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "coffer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "coffer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "coffer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coffer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "coffer.labels" -}}
helm.sh/chart: {{ include "coffer.chart" . }}
{{ include "coffer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coffer
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "coffer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "coffer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "coffer.syncServiceAccountName" -}}
{{- if .Values.sync.controller.serviceAccount.create }}
{{- default (printf "%s-sync" (include "coffer.fullname" . | trunc 58 | trimSuffix "-")) .Values.sync.controller.serviceAccount.name }}
{{- else }}
{{- required "sync.controller.serviceAccount.name is required when sync.controller.serviceAccount.create is false" .Values.sync.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "coffer.syncSelectorLabels" -}}
app.kubernetes.io/name: {{ include "coffer.name" . }}-sync
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "coffer.syncLabels" -}}
helm.sh/chart: {{ include "coffer.chart" . }}
{{ include "coffer.syncSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coffer
app.kubernetes.io/component: sync
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "coffer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
coffer.checks fails the install on combinations the schema cannot express.
*/}}
{{- define "coffer.checks" -}}
{{- $driver := index .Values "secrets-store-csi-driver" }}
{{- if $driver.install }}
{{- $linux := default dict $driver.linux }}
{{- $dirs := concat (list (default "/var/run/secrets-store-csi-providers" $linux.providersDir)) (default list $linux.additionalProvidersDirs) }}
{{- if not (has .Values.provider.dir $dirs) }}
{{- fail (printf "provider.dir %q is not a directory the driver reads sockets from (%s): set secrets-store-csi-driver.linux.providersDir to it" .Values.provider.dir (join ", " $dirs)) }}
{{- end }}
{{- $audiences := list }}
{{- range $driver.tokenRequests }}{{ $audiences = append $audiences .audience }}{{ end }}
{{- if not (or (has "sts.amazonaws.com" $audiences) (has "pods.eks.amazonaws.com" $audiences)) }}
{{- fail "secrets-store-csi-driver.tokenRequests names neither sts.amazonaws.com (IRSA) nor pods.eks.amazonaws.com (EKS Pod Identity): kubelet would send coffer no ServiceAccount token and every mount would fail" }}
{{- end }}
{{- end }}
{{- if and .Values.health.enabled .Values.metrics.enabled (eq (int .Values.health.port) (int .Values.metrics.port)) }}
{{- fail "health.port and metrics.port must differ" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- end }}

{{/*
coffer.seconds turns a Go duration ("20s", "1m30s", "1500ms") into whole
seconds, rounded up.
*/}}
{{- define "coffer.seconds" -}}
{{- $ms := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|h|m|s)" (toString .) -1 }}
{{- $num := regexFind "^[0-9.]+" . }}
{{- $unit := trimPrefix $num . }}
{{- $factor := get (dict "h" 3600000.0 "m" 60000.0 "s" 1000.0 "ms" 1.0) $unit }}
{{- $ms = addf $ms (mulf (float64 $num) $factor) }}
{{- end }}
{{- ceil (divf $ms 1000.0) | int }}
{{- end }}

{{/*
What coffer serve --sync-secrets needs: the class of each mount, and the
Secrets it declares (read, server-side applied, deleted), with Events about
them.
*/}}
{{- define "coffer.atMountRules" -}}
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasses"]
  verbs: ["get"]
# blockOwnerDeletion on the owner references of Owner Secrets (the
# OwnerReferencesPermissionEnforcement admission plugin checks it).
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasses/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
