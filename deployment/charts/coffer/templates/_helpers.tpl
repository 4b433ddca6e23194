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

{{- define "coffer.eventsName" -}}
{{- printf "%s-events" (include "coffer.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{- define "coffer.eventsServiceAccountName" -}}
{{- if .Values.events.serviceAccount.create }}
{{- default (include "coffer.eventsName" .) .Values.events.serviceAccount.name }}
{{- else }}
{{- required "events.serviceAccount.name is required when events.serviceAccount.create is false" .Values.events.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "coffer.eventsSelectorLabels" -}}
app.kubernetes.io/name: {{ include "coffer.name" . }}-events
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "coffer.eventsLabels" -}}
helm.sh/chart: {{ include "coffer.chart" . }}
{{ include "coffer.eventsSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coffer
app.kubernetes.io/component: events
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
{{- $ctl := .Values.sync.controller }}
{{- if and $ctl.enabled .Values.rbac.create (not (include "coffer.syncNamespaces" . | fromJsonArray)) (not .Values.admissionPolicy.enabled) (not $ctl.acceptRiskTokensForAnyServiceAccount) }}
{{- fail "sync.controller in cluster mode (no sync.controller.namespaces) gets create on serviceaccounts/token in every namespace, and without admissionPolicy.enabled nothing holds those tokens to the AWS audiences: coffer-controller sync could act as any ServiceAccount of the cluster. Enable admissionPolicy (Kubernetes 1.30+), or list the namespaces to sync in sync.controller.namespaces (Roles there only), or, if another admission control holds coffer-controller sync's TokenRequests, set sync.controller.acceptRiskTokensForAnyServiceAccount=true" }}
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
# create only: the DaemonSet never patches an event (coffer serve's
# recorders are create-only), and admission.yaml holds what it creates.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
coffer.syncNamespaces is the JSON list of the namespaces coffer-controller sync is
scoped to (sync.controller.namespace and namespaces, each once); [] is
cluster mode. Use it with fromJsonArray.
*/}}
{{- define "coffer.syncNamespaces" -}}
{{- $ctl := .Values.sync.controller }}
{{- $all := list }}
{{- with $ctl.namespace }}{{ $all = append $all . }}{{ end }}
{{- range $ctl.namespaces }}{{ $all = append $all . }}{{ end }}
{{- $all | uniq | toJson }}
{{- end }}

{{/*
What coffer-controller sync needs, in every namespace it syncs (a ClusterRole in
cluster mode, a Role in each namespace of sync.controller.namespaces).
*/}}
{{- define "coffer.syncRules" -}}
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasses"]
  verbs: ["get", "list", "watch", "patch"]
# blockOwnerDeletion on the owner references of Owner Secrets (the
# OwnerReferencesPermissionEnforcement admission plugin checks it).
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasses/finalizers"]
  verbs: ["update"]
# list and watch: Secrets' metadata only, to retry at once an entry that
# waits for its Secret to change (an opt-in annotation, a deletion).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["serviceaccounts/token"]
  verbs: ["create"]
{{- if .Values.sync.controller.restarts.enabled }}
# --restart-workloads: the opted-in workloads (patch: their pod template's
# restart annotations, and nothing else by admission.yaml), their pods'
# metadata and the driver's mount statuses (object versions).
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasspodstatuses"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
