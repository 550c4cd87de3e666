################################################################################
# AWS and network
################################################################################

variable "region" {
  description = "AWS region for the VPC and the cluster."
  type        = string
  default     = "eu-west-1"
}

variable "availability_zones" {
  description = "Availability zones of the VPC subnets and nodes, in region (two or more; EKS needs two). Change them together with region."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 16
    error_message = "availability_zones must list between 2 and 16 zones."
  }
}

variable "tags" {
  description = "Tags added to every AWS resource (provider default_tags)."
  type        = map(string)
  default = {
    Project   = "inference-platform"
    ManagedBy = "terraform"
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; a private /20 and a public and an intra /24 subnet are carved from it per availability zone."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr must be an IPv4 CIDR block of /16 or larger."
  }
}

variable "single_nat_gateway" {
  description = "Use one NAT gateway for all AZs (cheaper) instead of one per AZ (survives an AZ outage)."
  type        = bool
  default     = true
}

################################################################################
# Cluster
################################################################################

variable "cluster_name" {
  description = "Name of the EKS cluster (also used for the VPC)."
  type        = string
  default     = "inference-platform"

  validation {
    condition     = can(regex("^[a-zA-Z][-a-zA-Z0-9]{0,99}$", var.cluster_name))
    error_message = "cluster_name must start with a letter and contain only letters, digits and '-' (at most 100 characters)."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes <major>.<minor> version of the control plane and node groups. Versions past EKS standard support are billed at the extended-support rate."
  type        = string
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.34."
  }
}

variable "endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (restricted to endpoint_public_access_cidrs). Set to false when Terraform runs inside the VPC."
  type        = bool
  default     = true
}

variable "endpoint_public_access_cidrs" {
  description = "CIDR blocks allowed to reach the public API endpoint, e.g. your office or runner egress IPs. No default: opening it to 0.0.0.0/0 must be a deliberate choice."
  type        = list(string)

  validation {
    condition     = length(var.endpoint_public_access_cidrs) > 0 && alltrue([for cidr in var.endpoint_public_access_cidrs : can(cidrnetmask(cidr))])
    error_message = "endpoint_public_access_cidrs must be a non-empty list of IPv4 CIDR blocks."
  }
}

variable "access_entries" {
  description = "Extra EKS access entries (IAM principals and their access policies), in the format of the terraform-aws-modules/eks `access_entries` input. The identity running Terraform is made cluster admin separately."
  type = map(object({
    principal_arn = string
    type          = optional(string, "STANDARD")
    policy_associations = optional(map(object({
      policy_arn = string
      access_scope = object({
        type       = string
        namespaces = optional(list(string))
      })
    })), {})
  }))
  default = {}
}

################################################################################
# Node groups
################################################################################

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group (api, web, CPU workers, in-cluster RabbitMQ/PostgreSQL when used)."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "cpu_min_size" {
  description = "Minimum number of CPU nodes."
  type        = number
  default     = 2
}

variable "cpu_max_size" {
  description = "Maximum number of CPU nodes."
  type        = number
  default     = 4
}

variable "cpu_desired_size" {
  description = "Initial number of CPU nodes (later changes are ignored by the EKS module; scale with an autoscaler or the console)."
  type        = number
  default     = 2

  validation {
    condition     = var.cpu_desired_size >= 1
    error_message = "cpu_desired_size must be at least 1: the platform itself runs on the CPU node group."
  }
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group (NVIDIA, x86_64), e.g. g5.xlarge (1x A10G, 24 GiB)."
  type        = list(string)
  default     = ["g5.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for type in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|p4d|p4de|p5)\\.", type))])
    error_message = "gpu_instance_types must be NVIDIA x86_64 GPU instance types (g4dn, g5, g6, g6e, p4d, p4de, p5)."
  }
}

variable "gpu_capacity_type" {
  description = "Capacity type of the GPU node group: ON_DEMAND, or SPOT (cheaper, can be reclaimed; the queue redelivers interrupted work)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_capacity_type)
    error_message = "gpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "gpu_max_size" {
  description = "Maximum number of GPU nodes."
  type        = number
  default     = 2
}

variable "gpu_desired_size" {
  description = "Number of GPU nodes when the group is created; 0 means no GPU cost until it is scaled. The EKS module ignores later changes: scale with `aws eks update-nodegroup-config` or a cluster autoscaler."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu_desired_size >= 0
    error_message = "gpu_desired_size must not be negative."
  }
}

variable "gpu_disk_size_gib" {
  description = "Root volume size (GiB) of GPU nodes; CUDA images are large."
  type        = number
  default     = 100
}

variable "nvidia_device_plugin_chart_version" {
  description = "Pinned version of the nvidia-device-plugin Helm chart (https://nvidia.github.io/k8s-device-plugin)."
  type        = string
  default     = "0.18.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.nvidia_device_plugin_chart_version))
    error_message = "nvidia_device_plugin_chart_version must be an exact version such as 0.18.0."
  }
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

################################################################################
# Platform release
################################################################################

variable "namespace" {
  description = "Namespace for the release; created with the restricted Pod Security labels."
  type        = string
  default     = "inference-platform"
}

variable "image_tag" {
  description = "Tag of the service images (pushed to a registry the nodes can pull from). Null keeps the tag set by the values."
  type        = string
  default     = null
}

variable "values_files" {
  description = "Paths of Helm values files for the release (image repositories, replicas, ingress, workerGpu...), applied in order. Paths are relative to the directory Terraform runs in."
  type        = list(string)
  default     = []
}

variable "values" {
  description = "Inline Helm values documents (YAML strings), applied after values_files."
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

variable "model_store_storage_class" {
  description = "Existing ReadWriteMany StorageClass (e.g. EFS through the aws-efs-csi-driver) for the shared model store. Null leaves the model store settings to the values."
  type        = string
  default     = null
}

variable "database_url" {
  description = "PostgreSQL URL of an external database (e.g. Amazon RDS). Stored in a Kubernetes Secret, never in values."
  type        = string
  default     = null
  sensitive   = true
}

variable "broker_url" {
  description = "RabbitMQ URL of an external broker (e.g. Amazon MQ for RabbitMQ, amqps://). Stored in a Kubernetes Secret, never in values."
  type        = string
  default     = null
  sensitive   = true
}

variable "web_secret_key" {
  description = "Django SECRET_KEY for the web service (at least 50 characters). Stored in a Kubernetes Secret."
  type        = string
  default     = null
  sensitive   = true
}

variable "timeout_seconds" {
  description = "Seconds Helm waits for the release (including the migrations Job) to become ready."
  type        = number
  default     = 900
}
