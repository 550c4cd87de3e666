{{/*
Helpers shared by every template. Most take a dict:
  ctx        the root context ($)
  component  the app.kubernetes.io/component value (api, web, worker, ...)
  pool       optional worker pool (cpu, gpu): label inference-platform/pool
  values     the component's values block
*/}}

{{/*
Chart name, overridable by nameOverride. Kubernetes names are DNS labels: 63 characters at most.
*/}}
{{- define "ip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified release name: <release>-<chart>, or the release name alone when it already
contains the chart name; 63 characters at most.
*/}}
{{- define "ip.fullname" -}}
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

{{/*
Name of a component's objects: <fullname>-<suffix>, the prefix cut so the whole stays within
52 characters: Service names are DNS labels (63), and a StatefulSet's name plus the
controller-revision-hash suffix must fit a label value (63). Takes (dict "ctx" $ "suffix" "api").
*/}}
{{- define "ip.componentName" -}}
{{- $suffix := .suffix -}}
{{- $prefix := include "ip.fullname" .ctx | trunc (int (sub 51 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $prefix $suffix -}}
{{- end }}

{{/*
Chart label value: name-version.
*/}}
{{- define "ip.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of the release (selectors are immutable).
*/}}
{{- define "ip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ip.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .pool }}
inference-platform/pool: {{ . }}
{{- end }}
{{- end }}

{{/*
Standard labels of every object.
*/}}
{{- define "ip.labels" -}}
helm.sh/chart: {{ include "ip.chart" .ctx }}
{{ include "ip.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: inference-platform
{{- end }}

{{/*
Labels selecting every pod of the release (NetworkPolicy default deny).
*/}}
{{- define "ip.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
ServiceAccount name of a component. Takes (dict "ctx" $ "suffix" "api" "values" .Values.api).
*/}}
{{- define "ip.serviceAccountName" -}}
{{- if .values.serviceAccount.create }}
{{- default (include "ip.componentName" .) .values.serviceAccount.name }}
{{- else }}
{{- default "default" .values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image of the project's own services. Takes (dict "ctx" $ "image" .Values.api.image).
Tag: image.tag, then default.image.tag, then appVersion; plus image.tagSuffix (GPU: -cuda).
*/}}
{{- define "ip.appImage" -}}
{{- $d := .ctx.Values.default.image -}}
{{- $registry := .image.registry | default $d.registry -}}
{{- $tag := .image.tag | default $d.tag | default .ctx.Chart.AppVersion -}}
{{- $ref := printf "%s/%s:%s%s" $registry .image.repository $tag (.image.tagSuffix | default "") -}}
{{- if .image.digest }}{{ $ref = printf "%s@%s" $ref .image.digest }}{{ end -}}
{{- $ref -}}
{{- end }}

{{/*
Pull policy of the project's images.
*/}}
{{- define "ip.appPullPolicy" -}}
{{- .image.pullPolicy | default .ctx.Values.default.image.pullPolicy -}}
{{- end }}

{{/*
A third-party image (rabbitmq, postgres, collector), pinned in its own block.
*/}}
{{- define "ip.image" -}}
{{- $ref := printf "%s/%s:%s" .registry .repository .tag -}}
{{- if .digest }}{{ $ref = printf "%s@%s" $ref .digest }}{{ end -}}
{{- $ref -}}
{{- end }}

{{/*
Container security context: default.securityContext with the component's overrides.
*/}}
{{- define "ip.securityContext" -}}
{{- toYaml (mergeOverwrite (deepCopy .ctx.Values.default.securityContext) (deepCopy (.values.securityContext | default dict))) }}
{{- end }}

{{/*
Resources: the component's, else default.resources.
*/}}
{{- define "ip.resources" -}}
{{- toYaml (.resources | default .ctx.Values.default.resources) }}
{{- end }}

{{/*
Pod spec fields shared by every pod: service account, security context, pull secrets and
scheduling. Takes the component dict plus "suffix" and optionally "saValues" (whose
serviceAccount block to use; the GPU pool uses the worker's), "spread" (topology spread, for
Deployments) and "automountToken".
*/}}
{{- define "ip.podCommon" -}}
{{- $d := .ctx.Values.default -}}
{{- $v := .values -}}
serviceAccountName: {{ include "ip.serviceAccountName" (dict "ctx" .ctx "suffix" .suffix "values" (.saValues | default .values)) }}
{{- if .automountToken }}
automountServiceAccountToken: true
{{- else }}
# No pod of this component calls the Kubernetes API.
automountServiceAccountToken: false
{{- end }}
enableServiceLinks: false
securityContext:
  {{- toYaml (mergeOverwrite (deepCopy $d.podSecurityContext) (deepCopy ($v.podSecurityContext | default dict))) | nindent 2 }}
{{- with $d.image.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($v.priorityClassName | default $d.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- with (mergeOverwrite (deepCopy $d.nodeSelector) (deepCopy ($v.nodeSelector | default dict))) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($v.tolerations | default $d.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with ($v.affinity | default $d.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .spread }}
{{- $constraints := list }}
{{- range ($v.topologySpreadConstraints | default $d.topologySpreadConstraints) }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "ip.selectorLabels" $ | fromYaml)) }}
{{- end }}
{{- $constraints = append $constraints $c }}
{{- end }}
{{- with $constraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod annotations: default and component podAnnotations.
*/}}
{{- define "ip.podAnnotations" -}}
{{- $a := mergeOverwrite (deepCopy .ctx.Values.default.podAnnotations) (deepCopy (.values.podAnnotations | default dict)) -}}
{{- with $a }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod labels: standard labels plus default and component podLabels.
*/}}
{{- define "ip.podLabels" -}}
{{ include "ip.labels" . }}
{{- $l := mergeOverwrite (deepCopy .ctx.Values.default.podLabels) (deepCopy (.values.podLabels | default dict)) -}}
{{- with $l }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Checkov skips shared by every workload, with the reasons (see README, "Security checks").
*/}}
{{- define "ip.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_43=Images are pinned by tag; set image.digest to pin by digest as well.
checkov.io/skip2: CKV_K8S_15=Pinned tags make IfNotPresent safe and keep pods starting during a registry outage.
checkov.io/skip3: CKV_K8S_35=The services read BROKER_URL and DATABASE_URL from env; URLs are composed from secretKeyRef passwords by env expansion.
{{- end }}

{{/* ---------------------------------------------------------------- connections */}}

{{/*
Secret and key of the RabbitMQ password (built-in broker).
*/}}
{{- define "ip.rabbitmq.passwordSecret" -}}
{{- .Values.rabbitmq.auth.existingSecret | default (include "ip.componentName" (dict "ctx" . "suffix" "rabbitmq")) -}}
{{- end }}
{{- define "ip.rabbitmq.passwordKey" -}}
{{- if .Values.rabbitmq.auth.existingSecret }}{{ .Values.rabbitmq.auth.existingSecretPasswordKey }}{{ else }}rabbitmq-password{{ end -}}
{{- end }}

{{/*
Secret of an external broker's URLs: existingSecret, or the chart's copy of external.url.
*/}}
{{- define "ip.rabbitmq.externalSecret" -}}
{{- .Values.rabbitmq.external.existingSecret | default (include "ip.componentName" (dict "ctx" . "suffix" "rabbitmq-external")) -}}
{{- end }}

{{/*
Host of the built-in RabbitMQ Service, namespace-qualified so that KEDA can reach it too.
*/}}
{{- define "ip.rabbitmq.host" -}}
{{- printf "%s.%s.svc" (include "ip.componentName" (dict "ctx" . "suffix" "rabbitmq")) .Release.Namespace -}}
{{- end }}

{{/*
BROKER_URL env entries. Built-in: the password from its Secret, the URL composed by
Kubernetes env expansion ($(VAR) of an earlier entry). External: the URL from a Secret.
*/}}
{{- define "ip.brokerEnv" -}}
{{- if .Values.rabbitmq.enabled }}
- name: BROKER_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ip.rabbitmq.passwordSecret" . }}
      key: {{ include "ip.rabbitmq.passwordKey" . }}
- name: BROKER_URL
  value: {{ printf "amqp://%s:$(BROKER_PASSWORD)@%s:5672//" .Values.rabbitmq.auth.username (include "ip.rabbitmq.host" .) | quote }}
{{- else }}
- name: BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ip.rabbitmq.externalSecret" . }}
      key: {{ .Values.rabbitmq.external.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
Secret and key of the PostgreSQL password (built-in database).
*/}}
{{- define "ip.postgresql.passwordSecret" -}}
{{- .Values.postgresql.auth.existingSecret | default (include "ip.componentName" (dict "ctx" . "suffix" "postgresql")) -}}
{{- end }}
{{- define "ip.postgresql.passwordKey" -}}
{{- if .Values.postgresql.auth.existingSecret }}{{ .Values.postgresql.auth.existingSecretPasswordKey }}{{ else }}postgres-password{{ end -}}
{{- end }}
{{- define "ip.postgresql.externalSecret" -}}
{{- .Values.postgresql.external.existingSecret | default (include "ip.componentName" (dict "ctx" . "suffix" "postgresql-external")) -}}
{{- end }}

{{/*
DATABASE_URL env entries (see ip.brokerEnv).
*/}}
{{- define "ip.databaseEnv" -}}
{{- if .Values.postgresql.enabled }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ip.postgresql.passwordSecret" . }}
      key: {{ include "ip.postgresql.passwordKey" . }}
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(DATABASE_PASSWORD)@%s:5432/%s" .Values.postgresql.auth.username (include "ip.componentName" (dict "ctx" . "suffix" "postgresql")) .Values.postgresql.auth.database | quote }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ip.postgresql.externalSecret" . }}
      key: {{ .Values.postgresql.external.existingSecretKey }}
{{- end }}
{{- end }}

{{/*
DJANGO_SECRET_KEY env entry.
*/}}
{{- define "ip.djangoSecretEnv" -}}
- name: DJANGO_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.web.secretKey.existingSecret | default (include "ip.componentName" (dict "ctx" . "suffix" "web")) }}
      key: {{ if .Values.web.secretKey.existingSecret }}{{ .Values.web.secretKey.existingSecretKey }}{{ else }}secret-key{{ end }}
{{- end }}

{{/* ---------------------------------------------------------------- telemetry */}}

{{/*
OTLP endpoint of the apps: the built-in collector, else otel.endpoint, else none.
*/}}
{{- define "ip.otelEndpoint" -}}
{{- if .Values.otelCollector.enabled -}}
{{- printf "http://%s:4317" (include "ip.componentName" (dict "ctx" . "suffix" "otel-collector")) -}}
{{- else -}}
{{- .Values.otel.endpoint -}}
{{- end -}}
{{- end }}

{{/*
Static OTEL_* settings for a component's ConfigMap. Takes (dict "ctx" $ "service" "api").
*/}}
{{- define "ip.otelConfig" -}}
{{- $endpoint := include "ip.otelEndpoint" .ctx -}}
OTEL_SERVICE_NAME: {{ .service | quote }}
{{- if $endpoint }}
OTEL_TRACES_EXPORTER: "otlp"
OTEL_EXPORTER_OTLP_ENDPOINT: {{ $endpoint | quote }}
OTEL_EXPORTER_OTLP_PROTOCOL: "grpc"
{{- else }}
OTEL_TRACES_EXPORTER: "none"
{{- end }}
{{- end }}

{{/*
Downward-API env entries and OTEL_RESOURCE_ATTRIBUTES built from them, so every span says
which pod, node and namespace it came from. Takes (dict "ctx" $ "extra" (dict ...)).
*/}}
{{- define "ip.otelEnv" -}}
- name: K8S_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: K8S_NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- $attrs := list "k8s.namespace.name=$(K8S_NAMESPACE)" "k8s.pod.name=$(K8S_POD_NAME)" "k8s.pod.uid=$(K8S_POD_UID)" "k8s.node.name=$(K8S_NODE_NAME)" (printf "service.namespace=%s" .ctx.Release.Name) }}
{{- range $k, $v := (.extra | default dict) }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
{{- range $k, $v := .ctx.Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k (toString $v)) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}

{{/* ---------------------------------------------------------------- model store */}}

{{/*
Claim name of the model store (pvc and hostPath types).
*/}}
{{- define "ip.modelStore.claimName" -}}
{{- if and (eq .Values.modelStore.type "pvc") .Values.modelStore.persistence.existingClaim -}}
{{- .Values.modelStore.persistence.existingClaim -}}
{{- else -}}
{{- include "ip.componentName" (dict "ctx" . "suffix" "models") -}}
{{- end -}}
{{- end }}

{{/*
The model-store volume of a pod.
*/}}
{{- define "ip.modelStore.volume" -}}
- name: models
{{- if eq .Values.modelStore.type "emptyDir" }}
  emptyDir:
    sizeLimit: {{ .Values.modelStore.emptyDir.sizeLimit }}
{{- else }}
  persistentVolumeClaim:
    claimName: {{ include "ip.modelStore.claimName" . }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- validation */}}

{{/*
Refuse values that would deploy a platform that cannot work. Included from NOTES.txt and
from the api Deployment, so `helm template` fails as well as `helm install`.
*/}}
{{- define "ip.validate" -}}
{{- $pools := list (dict "name" "worker" "v" .Values.worker) -}}
{{- if .Values.workerGpu.enabled }}{{ $pools = append $pools (dict "name" "workerGpu" "v" .Values.workerGpu) }}{{ end -}}
{{- range $pools }}
{{- if le (int .v.config.timeLimitSeconds) (int .v.config.softTimeLimitSeconds) }}
{{- fail (printf "%s.config.timeLimitSeconds (%v) must exceed %s.config.softTimeLimitSeconds (%v)" .name .v.config.timeLimitSeconds .name .v.config.softTimeLimitSeconds) }}
{{- end }}
{{- if and $.Values.rabbitmq.enabled (le (int $.Values.rabbitmq.consumerTimeoutSeconds) (int .v.config.timeLimitSeconds)) }}
{{- fail (printf "rabbitmq.consumerTimeoutSeconds (%v) must exceed %s.config.timeLimitSeconds (%v): RabbitMQ would close the channel of an acks_late task still running" $.Values.rabbitmq.consumerTimeoutSeconds .name .v.config.timeLimitSeconds) }}
{{- end }}
{{- end }}
{{- if .Values.trainer.enabled }}
{{- $hard := include "ip.trainer.hardTimeLimit" . | int }}
{{- if and .Values.rabbitmq.enabled (le (int .Values.rabbitmq.consumerTimeoutSeconds) $hard) }}
{{- fail (printf "rabbitmq.consumerTimeoutSeconds (%v) must exceed the trainer's hard time limit (%v: trainer.config.softTimeLimitSeconds + hardTimeLimitGraceSeconds): RabbitMQ would close the channel of a training run still going" .Values.rabbitmq.consumerTimeoutSeconds $hard) }}
{{- end }}
{{- end }}
{{- with .Values.web.config.mediaRoot }}
{{- if not (hasPrefix (printf "%s/" ($.Values.modelStore.mountPath | trimSuffix "/")) .) }}
{{- fail (printf "web.config.mediaRoot (%s) must lie under modelStore.mountPath (%s): the trainer reads the uploads web writes there" . $.Values.modelStore.mountPath) }}
{{- end }}
{{- end }}
{{- if .Values.web.adminUser.enabled }}
{{- if not .Values.web.adminUser.existingSecret }}
{{- fail "web.adminUser.enabled needs web.adminUser.existingSecret: a Secret holding the admin password (never a literal in values)" }}
{{- end }}
{{- if not .Values.migrations.enabled }}
{{- fail "web.adminUser.enabled needs migrations.enabled: the migration Job creates the admin user after migrating" }}
{{- end }}
{{- end }}
{{- if and .Values.api.responseCache.enabled (not .Values.api.responseCache.url) (not .Values.api.responseCache.existingSecret) }}
{{- fail "api.responseCache.enabled needs api.responseCache.existingSecret (a Secret holding the Redis URL) or api.responseCache.url" }}
{{- end }}
{{- if and (not .Values.rabbitmq.enabled) (not .Values.rabbitmq.external.url) (not .Values.rabbitmq.external.existingSecret) }}
{{- fail "rabbitmq.enabled is false: set rabbitmq.external.existingSecret (or rabbitmq.external.url)" }}
{{- end }}
{{- if and (not .Values.postgresql.enabled) (not .Values.postgresql.external.url) (not .Values.postgresql.external.existingSecret) }}
{{- fail "postgresql.enabled is false: set postgresql.external.existingSecret (or postgresql.external.url)" }}
{{- end }}
{{- if and .Values.keda.enabled (not .Values.rabbitmq.enabled) (eq .Values.keda.protocol "http") (not .Values.rabbitmq.external.managementUrl) (not .Values.rabbitmq.external.existingSecret) }}
{{- fail "keda.protocol http with an external broker needs rabbitmq.external.managementUrl or a management-url key in rabbitmq.external.existingSecret" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled needs at least one entry in ingress.hosts" }}
{{- end }}
{{- end }}

{{/*
A Secret value that stays the same across upgrades: the live one (lookup) if present, else a
new random string. `helm template` has no cluster, so it always renders a new one there.
Takes (dict "ctx" $ "name" secretName "key" key "length" 32).
*/}}
{{- define "ip.stableSecret" -}}
{{- $live := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $live $live.data (hasKey $live.data .key) -}}
{{- index $live.data .key -}}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- end }}

{{/*
Replicas of a Deployment that an autoscaler owns: the live count (so an upgrade does not
undo the autoscaler), else the autoscaler's minimum. Takes (dict "ctx" $ "name" name "min" n).
*/}}
{{- define "ip.autoscaledReplicas" -}}
{{- $live := lookup "apps/v1" "Deployment" .ctx.Release.Namespace .name -}}
{{- if and $live $live.spec (hasKey $live.spec "replicas") -}}
{{- $live.spec.replicas -}}
{{- else -}}
{{- .min -}}
{{- end -}}
{{- end }}

{{/*
Default HPA behavior of the worker pools: scale up at once, scale down slowly (one pod a
minute after five quiet minutes), so a short lull does not drain pods that will be needed
again; each removed pod still finishes its tasks (terminationGracePeriodSeconds).
*/}}
{{- define "ip.workerScaleBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - type: Percent
      value: 100
      periodSeconds: 15
    - type: Pods
      value: 4
      periodSeconds: 15
  selectPolicy: Max
scaleDown:
  stabilizationWindowSeconds: 300
  policies:
    - type: Pods
      value: 1
      periodSeconds: 60
{{- end }}

{{/*
Host names Django accepts: the web Service names, the ingress hosts and web.config.allowedHosts.
*/}}
{{- define "ip.web.allowedHosts" -}}
{{- $svc := include "ip.componentName" (dict "ctx" . "suffix" "web") -}}
{{- $hosts := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) -}}
{{- if .Values.ingress.enabled }}{{ $hosts = concat $hosts .Values.ingress.hosts }}{{ end -}}
{{- join "," (uniq (concat $hosts .Values.web.config.allowedHosts)) -}}
{{- end }}

{{/*
Directory of uploads (DJANGO_MEDIA_ROOT): web.config.mediaRoot, else <modelStore.mountPath>/uploads.
*/}}
{{- define "ip.web.mediaRoot" -}}
{{- .Values.web.config.mediaRoot | default (printf "%s/uploads" (.Values.modelStore.mountPath | trimSuffix "/")) -}}
{{- end }}

{{/*
Django settings shared by every process of the web image (web, trainer, the migration Job):
they load the same settings module, so they must agree on hosts, paths, queues and links.
*/}}
{{- define "ip.django.configData" -}}
{{- $cfg := .Values.web.config -}}
{{- $redirect := $cfg.secureSslRedirect -}}
{{- if eq (toString $redirect) "auto" }}{{ $redirect = eq (include "ip.ingress.tls" .) "true" }}{{ end -}}
DJANGO_SETTINGS_MODULE: {{ $cfg.settingsModule | quote }}
DJANGO_ALLOWED_HOSTS: {{ include "ip.web.allowedHosts" . | quote }}
DJANGO_CSRF_TRUSTED_ORIGINS: {{ include "ip.web.csrfOrigins" . | quote }}
# TLS ends at the ingress; redirecting plain http only makes sense when the ingress serves https.
DJANGO_SECURE_SSL_REDIRECT: {{ $redirect | toString | quote }}
DJANGO_ADMIN_URL: {{ $cfg.adminUrl | quote }}
DJANGO_LOG_LEVEL: {{ $cfg.logLevel | quote }}
DJANGO_CONN_MAX_AGE: {{ $cfg.connMaxAge | quote }}
MODEL_STORE: {{ .Values.modelStore.mountPath | quote }}
# Uploads live on the model store: web writes them, the trainer reads them.
DJANGO_MEDIA_ROOT: {{ include "ip.web.mediaRoot" . | quote }}
WEB_UPLOAD_MAX_MB: {{ $cfg.uploadMaxMb | quote }}
WEB_PAGE_SIZE: {{ $cfg.pageSize | quote }}
TRACE_UI_URL: {{ $cfg.traceUiUrl | quote }}
# web enqueues training runs and batch chunks; the trainer consumes <prefix>.training.
BROKER_QUEUE_PREFIX: {{ .Values.rabbitmq.queuePrefix | quote }}
{{- end }}

{{/*
Hard time limit of a training run in seconds: the soft limit plus the grace the trainer's
Celery app adds (TRAINER_HARD_TIME_LIMIT_GRACE_S).
*/}}
{{- define "ip.trainer.hardTimeLimit" -}}
{{- add .Values.trainer.config.softTimeLimitSeconds .Values.trainer.config.hardTimeLimitGraceSeconds -}}
{{- end }}

{{/*
Environment (ConfigMap data) of the trainer: the shared Django settings plus its own. The
Deployment's checksum is taken from it.
*/}}
{{- define "ip.trainer.configData" -}}
{{- $v := .Values.trainer -}}
{{ include "ip.django.configData" . }}
TRAINER_SOFT_TIME_LIMIT_S: {{ $v.config.softTimeLimitSeconds | quote }}
TRAINER_HARD_TIME_LIMIT_GRACE_S: {{ $v.config.hardTimeLimitGraceSeconds | quote }}
# XGBoost's threads per training: the CPU the pod is given, not the node's core count.
OMP_NUM_THREADS: {{ $v.config.threads | quote }}
{{ include "ip.otelConfig" (dict "ctx" . "service" "trainer") }}
{{- end }}

{{/*
Whether any ingress host has TLS.
*/}}
{{- define "ip.ingress.tls" -}}
{{- if and .Values.ingress.enabled .Values.ingress.tls }}true{{ end -}}
{{- end }}

{{/*
CSRF trusted origins: each ingress host with its scheme (https when a TLS block covers it).
*/}}
{{- define "ip.web.csrfOrigins" -}}
{{- $origins := list -}}
{{- if .Values.ingress.enabled }}
{{- $tlsHosts := list }}
{{- range .Values.ingress.tls }}{{ $tlsHosts = concat $tlsHosts (.hosts | default list) }}{{ end }}
{{- range .Values.ingress.hosts }}
{{- $origins = append $origins (printf "%s://%s" (ternary "https" "http" (has . $tlsHosts)) .) }}
{{- end }}
{{- end -}}
{{- join "," (uniq (concat $origins .Values.web.config.csrfTrustedOrigins)) -}}
{{- end }}

{{/*
The enabled worker pools: dicts with suffix, pool label and values.
*/}}
{{- define "ip.workerPools" -}}
{{- $pools := list (dict "suffix" "worker" "pool" "cpu" "key" "worker") -}}
{{- if .Values.workerGpu.enabled }}{{ $pools = append $pools (dict "suffix" "worker-gpu" "pool" "gpu" "key" "workerGpu") }}{{ end -}}
{{- toJson $pools -}}
{{- end }}

{{/*
Environment (ConfigMap data) of a worker pool; the Deployment's checksum is taken from it, so
each pool rolls only when its own settings change. Takes (dict "ctx" $ "v" .Values.worker).
*/}}
{{- define "ip.worker.configData" -}}
{{- $v := .v -}}
BROKER_QUEUE_PREFIX: {{ .ctx.Values.rabbitmq.queuePrefix | quote }}
MODEL_STORE: {{ .ctx.Values.modelStore.mountPath | quote }}
WORKER_DEVICE: {{ $v.config.device | quote }}
WORKER_CONCURRENCY: {{ $v.config.concurrency | quote }}
WORKER_BATCH_MAX_SIZE: {{ $v.config.batchMaxSize | quote }}
WORKER_BATCH_MAX_WAIT_MS: {{ $v.config.batchMaxWaitMs | quote }}
WORKER_SOFT_TIME_LIMIT: {{ $v.config.softTimeLimitSeconds | quote }}
WORKER_TIME_LIMIT: {{ $v.config.timeLimitSeconds | quote }}
WORKER_MAX_RETRIES: {{ $v.config.maxRetries | quote }}
WORKER_MODEL_CACHE_SIZE: {{ $v.config.modelCacheSize | quote }}
WORKER_HEARTBEAT_MAX_AGE_S: {{ $v.config.heartbeatMaxAgeSeconds | quote }}
# /metrics of the Celery main process (the worker-metrics Service and ServiceMonitor scrape it).
WORKER_METRICS_PORT: "9808"
# prometheus_client aggregates the prefork pool processes' metrics through files here (an emptyDir).
PROMETHEUS_MULTIPROC_DIR: /tmp/metrics
# One XGBoost/OpenMP thread per pool process: concurrency, not threads, uses the cores.
OMP_NUM_THREADS: "1"
{{ include "ip.otelConfig" (dict "ctx" .ctx "service" "worker") }}
{{- end }}

{{/*
NetworkPolicy peer: the pods of one component of this release. Takes (dict "ctx" $ "component" "api").
*/}}
{{- define "ip.np.peer" -}}
- podSelector:
    matchLabels:
      {{- include "ip.selectorLabels" . | nindent 6 }}
{{- end }}

{{/*
NetworkPolicy egress "to" list for a set of CIDRs; no CIDRs means no "to" (any destination).
*/}}
{{- define "ip.np.cidrs" -}}
{{- with . }}
to:
  {{- range . }}
  - ipBlock:
      cidr: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
NetworkPolicy TCP port entries from a list of numbers.
*/}}
{{- define "ip.np.ports" -}}
{{- range . }}
- port: {{ . }}
  protocol: TCP
{{- end }}
{{- end }}

{{/*
Egress rules of the app pods (api, web, trainer, worker) to PostgreSQL and the telemetry endpoint.
*/}}
{{- define "ip.np.egressDatabase" -}}
{{- if .Values.postgresql.enabled }}
- to:
    {{- include "ip.np.peer" (dict "ctx" . "component" "postgresql") | trim | nindent 4 }}
  ports:
    - port: 5432
      protocol: TCP
{{- else }}
- ports:
    {{- include "ip.np.ports" .Values.networkPolicy.external.postgresql.ports | trim | nindent 4 }}
  {{- with (include "ip.np.cidrs" .Values.networkPolicy.external.postgresql.cidrs | trim) }}{{ . | nindent 2 }}{{ end }}
{{- end }}
{{- end }}

{{- define "ip.np.egressBroker" -}}
{{- if .Values.rabbitmq.enabled }}
- to:
    {{- include "ip.np.peer" (dict "ctx" . "component" "rabbitmq") | trim | nindent 4 }}
  ports:
    - port: 5672
      protocol: TCP
{{- else }}
- ports:
    {{- include "ip.np.ports" .Values.networkPolicy.external.rabbitmq.ports | trim | nindent 4 }}
  {{- with (include "ip.np.cidrs" .Values.networkPolicy.external.rabbitmq.cidrs | trim) }}{{ . | nindent 2 }}{{ end }}
{{- end }}
{{- end }}

{{- define "ip.np.egressTelemetry" -}}
{{- if .Values.otelCollector.enabled }}
- to:
    {{- include "ip.np.peer" (dict "ctx" . "component" "otel-collector") | trim | nindent 4 }}
  ports:
    - port: 4317
      protocol: TCP
    - port: 4318
      protocol: TCP
{{- else if .Values.otel.endpoint }}
- ports:
    {{- include "ip.np.ports" .Values.networkPolicy.external.otel.ports | trim | nindent 4 }}
  {{- with (include "ip.np.cidrs" .Values.networkPolicy.external.otel.cidrs | trim) }}{{ . | nindent 2 }}{{ end }}
{{- end }}
{{- with .Values.networkPolicy.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}
