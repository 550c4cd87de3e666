output "cluster_name" {
  description = "Name of the kind cluster; the kubectl context is kind-<name>."
  value       = kind_cluster.this.name
}

output "endpoint" {
  description = "Kubernetes API server endpoint of the kind cluster."
  value       = kind_cluster.this.endpoint
}

output "kubeconfig_path" {
  description = "Kubeconfig file holding the cluster's context (kind-<name>)."
  value       = kind_cluster.this.kubeconfig_path
}

output "kubeconfig" {
  description = "Admin kubeconfig of the kind cluster (contains the client key)."
  value       = kind_cluster.this.kubeconfig
  sensitive   = true
}

output "namespace" {
  description = "Namespace the platform runs in."
  value       = module.inference_platform.namespace
}

output "release_name" {
  description = "Name of the Helm release."
  value       = module.inference_platform.release_name
}

output "release_status" {
  description = "Status of the Helm release (`deployed` after a successful apply)."
  value       = module.inference_platform.release_status
}

output "api_service_dns_name" {
  description = "In-cluster DNS name of the inference API Service (port 8080)."
  value       = module.inference_platform.api_service_dns_name
}

output "web_service_dns_name" {
  description = "In-cluster DNS name of the web Service (port 8000)."
  value       = module.inference_platform.web_service_dns_name
}
