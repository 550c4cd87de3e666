# Resolves the chosen zones. Filtering on zone names keeps the set closed, so a zone
# AWS adds later never moves subnets around.
data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "zone-name"
    values = var.availability_zones
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zones)
      error_message = "Every zone in availability_zones must exist and be available in region."
    }
  }
}

locals {
  azs = data.aws_availability_zones.available.names

  gpu_label = { "nvidia.com/gpu.present" = "true" }
  gpu_taint = {
    key    = "nvidia.com/gpu"
    value  = "present"
    effect = "NO_SCHEDULE"
  }

  # Chart value that selects the RWX StorageClass for the shared model store.
  model_store_values = var.model_store_storage_class == null ? [] : [
    yamlencode({ modelStore = { storageClassName = var.model_store_storage_class } })
  ]
}

################################################################################
# Network: private subnets for nodes, public for load balancers, intra for the
# control plane ENIs
################################################################################

module "vpc" {
  #checkov:skip=CKV_TF_1:Registry module pinned to an exact version; registry sources have no commit hash.
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.21.0"

  name = var.cluster_name
  cidr = var.vpc_cidr

  azs             = local.azs
  private_subnets = [for index in range(length(local.azs)) : cidrsubnet(var.vpc_cidr, 4, index)]
  public_subnets  = [for index in range(length(local.azs)) : cidrsubnet(var.vpc_cidr, 8, index + 48)]
  intra_subnets   = [for index in range(length(local.azs)) : cidrsubnet(var.vpc_cidr, 8, index + 52)]

  enable_nat_gateway = true
  # One NAT gateway is cheaper; one per AZ survives the loss of an AZ.
  single_nat_gateway = var.single_nat_gateway

  enable_flow_log                                 = true
  create_flow_log_cloudwatch_log_group            = true
  create_flow_log_cloudwatch_iam_role             = true
  flow_log_cloudwatch_log_group_retention_in_days = 30

  public_subnet_tags = {
    "kubernetes.io/role/elb" = 1
  }
  private_subnet_tags = {
    "kubernetes.io/role/internal-elb" = 1
  }
}

################################################################################
# EKS: a CPU node group for the platform and a GPU node group that only pods
# tolerating nvidia.com/gpu (workerGpu) are scheduled on
################################################################################

module "eks" {
  #checkov:skip=CKV_TF_1:Registry module pinned to an exact version; registry sources have no commit hash.
  source  = "terraform-aws-modules/eks/aws"
  version = "20.37.2"

  cluster_name    = var.cluster_name
  cluster_version = var.kubernetes_version

  cluster_endpoint_public_access       = var.endpoint_public_access
  cluster_endpoint_public_access_cidrs = var.endpoint_public_access_cidrs

  # Access entries only (no aws-auth ConfigMap); the identity running Terraform is
  # made cluster admin so it can install the charts below.
  authentication_mode                      = "API"
  enable_cluster_creator_admin_permissions = true
  access_entries                           = var.access_entries

  cluster_addons = {
    coredns                = {}
    eks-pod-identity-agent = {}
    kube-proxy             = {}
    vpc-cni = {
      # The CNI must be ready before nodes join, or they stay NotReady.
      before_compute = true
    }
  }

  vpc_id                   = module.vpc.vpc_id
  subnet_ids               = module.vpc.private_subnets
  control_plane_subnet_ids = module.vpc.intra_subnets

  eks_managed_node_groups = {
    cpu = {
      ami_type       = "AL2023_x86_64_STANDARD"
      instance_types = var.cpu_instance_types

      min_size     = var.cpu_min_size
      max_size     = var.cpu_max_size
      desired_size = var.cpu_desired_size
    }

    gpu = {
      # NVIDIA driver and container toolkit are baked into this AMI; the device
      # plugin below makes the GPUs schedulable as nvidia.com/gpu.
      ami_type       = "AL2023_x86_64_NVIDIA"
      instance_types = var.gpu_instance_types
      capacity_type  = var.gpu_capacity_type

      # Scales to zero: GPU instances cost money only while desired_size > 0.
      min_size     = 0
      max_size     = var.gpu_max_size
      desired_size = var.gpu_desired_size

      labels = local.gpu_label
      taints = {
        gpu = local.gpu_taint
      }

      # Room for CUDA-sized images.
      block_device_mappings = {
        xvda = {
          device_name = "/dev/xvda"
          ebs = {
            volume_size           = var.gpu_disk_size_gib
            volume_type           = "gp3"
            encrypted             = true
            delete_on_termination = true
          }
        }
      }
    }
  }
}

################################################################################
# NVIDIA device plugin: advertises nvidia.com/gpu on the GPU nodes
################################################################################

resource "helm_release" "nvidia_device_plugin" {
  name       = "nvidia-device-plugin"
  namespace  = "kube-system"
  repository = "https://nvidia.github.io/k8s-device-plugin"
  chart      = "nvidia-device-plugin"
  version    = var.nvidia_device_plugin_chart_version

  atomic          = true
  cleanup_on_fail = true
  timeout         = 300

  values = [yamlencode({
    nodeSelector = local.gpu_label
    tolerations = [{
      key      = local.gpu_taint.key
      operator = "Exists"
      effect   = "NoSchedule"
    }]
  })]

  depends_on = [module.eks]
}

################################################################################
# KEDA: the chart's autoscaling (ScaledObjects) needs its CRDs and operator
################################################################################

resource "helm_release" "keda" {
  count = var.install_keda ? 1 : 0

  name             = "keda"
  namespace        = "keda"
  create_namespace = true
  repository       = "https://kedacore.github.io/charts"
  chart            = "keda"
  version          = var.keda_chart_version

  atomic          = true
  cleanup_on_fail = true
  timeout         = 300

  depends_on = [module.eks]
}

################################################################################
# The platform
################################################################################

module "inference_platform" {
  source = "../../modules/inference-platform"

  namespace = var.namespace
  image_tag = var.image_tag

  values = concat(local.model_store_values, [for path in var.values_files : file(path)], var.values)
  set    = var.set

  database_url   = var.database_url
  broker_url     = var.broker_url
  web_secret_key = var.web_secret_key

  timeout_seconds = var.timeout_seconds

  # GPU workers can only start once the device plugin advertises nvidia.com/gpu,
  # and the ScaledObjects need the KEDA CRDs.
  depends_on = [helm_release.nvidia_device_plugin, helm_release.keda]
}
