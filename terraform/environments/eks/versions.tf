terraform {
  required_version = ">= 1.6"

  required_providers {
    # terraform-aws-modules/eks 20.x supports AWS provider 5.x only.
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.95"
    }
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
