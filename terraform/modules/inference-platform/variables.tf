################################################################################
# Namespace
################################################################################

variable "namespace" {
  description = "Kubernetes namespace the release is installed into."
  type        = string
  default     = "inference-platform"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters."
  }
}

variable "create_namespace" {
  description = "Create the namespace (with Pod Security Admission labels). Set to false to install into an existing namespace that you label yourself."
  type        = bool
  default     = true
}

variable "pod_security_level" {
  description = "Pod Security Standard enforced, warned and audited on the namespace (pod-security.kubernetes.io/* labels). The chart is built for `restricted`."
  type        = string
  default     = "restricted"

  validation {
    condition     = contains(["restricted", "baseline", "privileged"], var.pod_security_level)
    error_message = "pod_security_level must be one of restricted, baseline, privileged."
  }
}

variable "namespace_labels" {
  description = "Extra labels for the created namespace. The pod-security.kubernetes.io/* labels are set from pod_security_level and cannot be overridden here."
  type        = map(string)
  default     = {}
}

################################################################################
# Helm release
################################################################################

variable "release_name" {
  description = "Helm release name. Service names are derived from it (see the api/web DNS outputs)."
  type        = string
  default     = "inference-platform"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be lower-case alphanumerics and '-', at most 53 characters (Helm's limit)."
  }
}

variable "chart" {
  description = "Chart to install: a local path, or a chart name when chart_repository is set. Null installs the repository's chart at charts/inference-platform."
  type        = string
  default     = null
}

variable "chart_repository" {
  description = "Chart repository URL (https:// or oci://). Null when chart is a local path."
  type        = string
  default     = null
}

variable "chart_version" {
  description = "Exact chart version to install from chart_repository. Ignored for a local chart path."
  type        = string
  default     = null
}

variable "values" {
  description = "Helm values documents (YAML strings, e.g. file(\"values.yaml\") or yamlencode({...})), applied in order. The values this module generates from its own inputs are applied after them."
  type        = list(string)
  default     = []
}

variable "set" {
  description = "Individual `--set` values applied on top of all values documents (helm provider 3.x list syntax). type is \"auto\" or \"string\"."
  type = list(object({
    name  = string
    value = string
    type  = optional(string)
  }))
  default = []
}

variable "set_sensitive" {
  description = "Like set, for values that must not appear in plan output."
  type = list(object({
    name  = string
    value = string
    type  = optional(string)
  }))
  default   = []
  sensitive = true
}

variable "image_tag" {
  description = "Image tag for every service image (rendered as the chart value default.image.tag). Null keeps the chart's default."
  type        = string
  default     = null

  validation {
    condition     = var.image_tag == null || can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid OCI tag (letters, digits, '_', '.', '-'; at most 128 characters)."
  }
}

variable "atomic" {
  description = "Roll the release back (or purge a first install) when an install or upgrade fails."
  type        = bool
  default     = true
}

variable "wait_for_jobs" {
  description = "Also wait for the chart's Jobs (database migrations) to complete before the release counts as deployed."
  type        = bool
  default     = true
}

variable "timeout_seconds" {
  description = "Seconds Helm waits for the release's resources (and Jobs) to become ready."
  type        = number
  default     = 600

  validation {
    condition     = var.timeout_seconds >= 60 && var.timeout_seconds <= 3600
    error_message = "timeout_seconds must be between 60 and 3600."
  }
}

variable "max_history" {
  description = "Number of Helm release revisions kept for rollback (0 keeps all)."
  type        = number
  default     = 10
}

variable "cluster_domain" {
  description = "Cluster DNS domain used to build the service DNS name outputs."
  type        = string
  default     = "cluster.local"
}

################################################################################
# External services and secrets
################################################################################

variable "database_url" {
  description = "PostgreSQL URL (postgres://...) of an external database. When set, it is stored in the module's Secret under the key database-url and the chart is pointed at it (postgresql.external.existingSecret)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.database_url == null || can(regex("^postgres(ql)?://", var.database_url))
    error_message = "database_url must start with postgres:// or postgresql://."
  }
}

variable "broker_url" {
  description = "RabbitMQ URL (amqp:// or amqps://) of an external broker. When set, it is stored in the module's Secret under the key broker-url and the chart is pointed at it (rabbitmq.external.existingSecret)."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.broker_url == null || can(regex("^amqps?://", var.broker_url))
    error_message = "broker_url must start with amqp:// or amqps://."
  }
}

variable "web_secret_key" {
  description = "Django SECRET_KEY for the web service. When set, it is stored in the module's Secret under the key secret-key and referenced by web.existingSecret."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.web_secret_key == null || length(coalesce(var.web_secret_key, "x")) >= 50
    error_message = "web_secret_key must be at least 50 characters long."
  }
}
