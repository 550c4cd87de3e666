output "namespace" {
  description = "Namespace the release runs in."
  value       = helm_release.this.namespace
}

output "release_name" {
  description = "Name of the Helm release."
  value       = helm_release.this.name
}

output "release_status" {
  description = "Status of the Helm release as reported by Helm (`deployed` after a successful apply)."
  value       = helm_release.this.status
}

output "secret_name" {
  description = "Name of the Secret holding the external credentials given to the module (broker-url, database-url, secret-key), or null when none were given."
  value       = length(local.secret_keys) > 0 ? kubernetes_secret_v1.this[0].metadata[0].name : null
}

output "api_service_dns_name" {
  description = "In-cluster DNS name of the inference API Service (port 8080), following the chart's `<fullname>-api` naming."
  value       = "${local.fullname}-api.${local.dns_suffix}"
}

output "web_service_dns_name" {
  description = "In-cluster DNS name of the web (Django) Service (port 8000), following the chart's `<fullname>-web` naming."
  value       = "${local.fullname}-web.${local.dns_suffix}"
}
