variable "cluster_name" {
  description = "Name of the kind cluster (also the kubeconfig context suffix: kind-<name>)."
  type        = string
  default     = "inference-platform"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be lower-case alphanumerics and '-', at most 50 characters."
  }
}

variable "node_image" {
  description = "kindest/node image for every node, ideally pinned by digest. Null uses the default image of the kind release built into the pinned provider version."
  type        = string
  default     = null
}

variable "kubeconfig_path" {
  description = "Kubeconfig file the cluster's context (kind-<name>) is merged into. Null uses ~/.kube/config."
  type        = string
  default     = null
}

variable "model_store_host_path" {
  description = "Absolute host directory mounted into every node at /var/lib/inference/models for the model store; it must be writable by the pods' uid 10001. Null uses var/kind/models in this repository, as make kind-up does."
  type        = string
  default     = null

  validation {
    condition     = var.model_store_host_path == null || can(regex("^/", var.model_store_host_path))
    error_message = "model_store_host_path must be an absolute path."
  }
}

variable "kind_values_file" {
  description = "Values file applied first to the release. Null uses the chart's kind profile, charts/inference-platform/ci/kind-values.yaml."
  type        = string
  default     = null
}

variable "extra_values" {
  description = "Further Helm values documents (YAML strings) applied after the kind profile."
  type        = list(string)
  default     = []
}

variable "set" {
  description = "Individual Helm `--set` values applied last (name, value, optional type)."
  type = list(object({
    name  = string
    value = string
    type  = optional(string)
  }))
  default = []
}

variable "namespace" {
  description = "Namespace for the release; created with the restricted Pod Security labels. The default matches scripts/kind.sh so make e2e-kind runs against this cluster too."
  type        = string
  default     = "inference"
}

variable "release_name" {
  description = "Helm release name. The default matches scripts/kind.sh (make e2e-kind)."
  type        = string
  default     = "ip"
}

variable "install_keda" {
  description = "Install KEDA, whose CRDs the chart's ScaledObjects need. Set to false when the cluster already runs KEDA."
  type        = bool
  default     = true
}

variable "keda_chart_version" {
  description = "Pinned version of the kedacore/keda Helm chart."
  type        = string
  default     = "2.16.1"
}

variable "image_tag" {
  description = "Tag of the service images loaded into the cluster with `kind load docker-image`. Null keeps the tag set by the values files."
  type        = string
  default     = null
}

variable "database_url" {
  description = "External PostgreSQL URL. Null uses the database the kind profile deploys in the cluster."
  type        = string
  default     = null
  sensitive   = true
}

variable "broker_url" {
  description = "External RabbitMQ URL. Null uses the broker the kind profile deploys in the cluster."
  type        = string
  default     = null
  sensitive   = true
}

variable "web_secret_key" {
  description = "Django SECRET_KEY for the web service (at least 50 characters). Null leaves it to the values files."
  type        = string
  default     = null
  sensitive   = true
}

variable "timeout_seconds" {
  description = "Seconds Helm waits for the release (including the migrations Job) to become ready."
  type        = number
  default     = 600
}
