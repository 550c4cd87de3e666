terraform {
  required_version = ">= 1.6"

  required_providers {
    # 3.x: `set`/`set_sensitive` are list attributes and the provider's
    # `kubernetes` setting is an object attribute (no longer blocks).
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.1"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 3.0"
    }
  }
}
