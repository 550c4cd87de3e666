locals {
  # The chart that ships in this repository, found relative to the module so the
  # module works from any working directory.
  chart = coalesce(var.chart, "${path.module}/../../../charts/inference-platform")

  namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace

  # Keys are fixed by the chart's existingSecret contract.
  secret_inputs = {
    "broker-url"   = var.broker_url
    "database-url" = var.database_url
    "secret-key"   = var.web_secret_key
  }
  secret_data = { for key, value in local.secret_inputs : key => value if value != null }
  # Which secrets were given is not itself secret; count and the generated values need it in clear.
  secret_keys = nonsensitive([for key, value in local.secret_inputs : key if value != null])
  secret_name = "${var.release_name}-external"

  # Values derived from the first-class inputs; applied after var.values so that an
  # explicit module input wins over a values file.
  generated_values = merge(
    var.image_tag == null ? {} : { default = { image = { tag = var.image_tag } } },
    contains(local.secret_keys, "broker-url") ? { rabbitmq = { external = { existingSecret = local.secret_name } } } : {},
    contains(local.secret_keys, "database-url") ? { postgresql = { external = { existingSecret = local.secret_name } } } : {},
    contains(local.secret_keys, "secret-key") ? { web = { secretKey = { existingSecret = local.secret_name } } } : {},
  )

  # Mirrors the chart's fullname helper: the release name alone when it already
  # contains the chart name, otherwise "<release>-<chart>", cut to 63 characters.
  fullname   = trimsuffix(substr(strcontains(var.release_name, "inference-platform") ? var.release_name : "${var.release_name}-inference-platform", 0, 63), "-")
  dns_suffix = "${local.namespace}.svc.${var.cluster_domain}"
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name = var.namespace

    labels = merge(var.namespace_labels, {
      "app.kubernetes.io/managed-by"               = "terraform"
      "pod-security.kubernetes.io/enforce"         = var.pod_security_level
      "pod-security.kubernetes.io/enforce-version" = "latest"
      "pod-security.kubernetes.io/warn"            = var.pod_security_level
      "pod-security.kubernetes.io/warn-version"    = "latest"
      "pod-security.kubernetes.io/audit"           = var.pod_security_level
      "pod-security.kubernetes.io/audit-version"   = "latest"
    })
  }
}

# One Secret holds every external credential given to the module; the chart reads
# each one by name and key through its existingSecret settings.
resource "kubernetes_secret_v1" "this" {
  count = length(local.secret_keys) > 0 ? 1 : 0

  metadata {
    name      = local.secret_name
    namespace = local.namespace

    labels = {
      "app.kubernetes.io/instance"   = var.release_name
      "app.kubernetes.io/managed-by" = "terraform"
      "app.kubernetes.io/part-of"    = "inference-platform"
    }
  }

  type = "Opaque"
  data = local.secret_data
}

resource "helm_release" "this" {
  name       = var.release_name
  namespace  = local.namespace
  chart      = local.chart
  repository = var.chart_repository
  version    = var.chart_version

  # The namespace is created above with its Pod Security labels, never by Helm.
  create_namespace = false
  atomic           = var.atomic
  cleanup_on_fail  = true
  wait             = true
  wait_for_jobs    = var.wait_for_jobs
  timeout          = var.timeout_seconds
  max_history      = var.max_history

  values = concat(var.values, length(local.generated_values) > 0 ? [yamlencode(local.generated_values)] : [])

  set           = length(var.set) > 0 ? var.set : null
  set_sensitive = length(var.set_sensitive) > 0 ? var.set_sensitive : null

  # The pods read the Secret at start-up: it must exist before the release waits on them.
  depends_on = [kubernetes_secret_v1.this]
}
