output "region" {
  description = "AWS region of the cluster."
  value       = var.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "Endpoint of the Kubernetes API server."
  value       = module.eks.cluster_endpoint
}

output "configure_kubectl" {
  description = "Command that writes a kubeconfig entry for the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name}"
}

output "vpc_id" {
  description = "ID of the VPC the cluster runs in (e.g. for an EFS file system or RDS instance)."
  value       = module.vpc.vpc_id
}

output "private_subnet_ids" {
  description = "IDs of the private subnets the nodes run in."
  value       = module.vpc.private_subnets
}

output "node_security_group_id" {
  description = "Security group shared by the nodes; allow it on external databases, brokers and EFS mount targets."
  value       = module.eks.node_security_group_id
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
