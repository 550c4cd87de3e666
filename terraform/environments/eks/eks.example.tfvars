# Copy to terraform.tfvars (ignored by git) and adjust.
region                       = "eu-west-1"
availability_zones           = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
cluster_name                 = "inference-platform"
endpoint_public_access_cidrs = ["203.0.113.10/32"]

gpu_instance_types = ["g5.xlarge"]
gpu_desired_size   = 1

image_tag    = "0.1.0"
values_files = ["production-values.yaml"]
