locals {
  repo_root = abspath("${path.root}/../../..")

  # Shared by every node at the same path so the chart's hostPath-backed model store
  # sees the same files whichever node a pod lands on. Same default as make kind-up.
  model_store_host_path = coalesce(var.model_store_host_path, "${local.repo_root}/var/kind/models")
  model_store_node_path = "/var/lib/inference/models"

  # Merged into the user's kubeconfig like `kind create cluster` does; left unset, the
  # provider would also write a copy with the admin key into the working directory.
  kubeconfig_path = coalesce(var.kubeconfig_path, pathexpand("~/.kube/config"))

  kind_values_file = coalesce(var.kind_values_file, "${local.repo_root}/charts/inference-platform/ci/kind-values.yaml")
}

resource "kind_cluster" "this" {
  name            = var.cluster_name
  node_image      = var.node_image
  wait_for_ready  = true
  kubeconfig_path = local.kubeconfig_path

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"

    node {
      role = "control-plane"

      extra_mounts {
        host_path      = local.model_store_host_path
        container_path = local.model_store_node_path
      }
    }

    # CPU worker: api, web, CPU workers, RabbitMQ, PostgreSQL.
    node {
      role = "worker"

      labels = {
        "inference-platform/pool" = "cpu"
      }

      extra_mounts {
        host_path      = local.model_store_host_path
        container_path = local.model_store_node_path
      }
    }

    # Stand-in for a GPU node: labelled and tainted like the EKS GPU node group so
    # the chart's workerGpu scheduling rules are exercised (it has no real GPU).
    node {
      role = "worker"

      labels = {
        "inference-platform/pool" = "gpu"
        "nvidia.com/gpu.present"  = "true"
      }

      kubeadm_config_patches = [
        <<-EOT
        kind: JoinConfiguration
        nodeRegistration:
          taints:
            - key: nvidia.com/gpu
              value: present
              effect: NoSchedule
        EOT
      ]

      extra_mounts {
        host_path      = local.model_store_host_path
        container_path = local.model_store_node_path
      }
    }
  }
}

# The chart's autoscaling (ScaledObjects) needs the KEDA CRDs and operator.
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
}

module "inference_platform" {
  source = "../../modules/inference-platform"

  namespace    = var.namespace
  release_name = var.release_name
  image_tag    = var.image_tag

  # The chart's kind profile first, then the caller's overrides.
  values = concat([file(local.kind_values_file)], var.extra_values)
  set    = var.set

  database_url   = var.database_url
  broker_url     = var.broker_url
  web_secret_key = var.web_secret_key

  timeout_seconds = var.timeout_seconds

  depends_on = [helm_release.keda]
}
