variable "cluster_name" {
  description = "Names the queue, rules, canaries and role, so that several clusters share an account."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$", var.cluster_name))
    error_message = "cluster_name: letters, digits, - and _, at most 32 characters."
  }
}

variable "oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider, arn:aws:iam::ACCOUNT:oidc-provider/oidc.eks.REGION.amazonaws.com/id/ID."
  type        = string
}

variable "oidc_provider" {
  description = "The cluster's OIDC issuer without https://, oidc.eks.REGION.amazonaws.com/id/ID."
  type        = string
}

variable "namespace" {
  description = "The namespace coffer's chart is installed in."
  type        = string
  default     = "kube-system"
}

variable "service_account_name" {
  description = "The ServiceAccount of coffer-controller events (the chart's default)."
  type        = string
  default     = "coffer-events"
}

variable "tags" {
  description = "Tags on every resource that takes them."
  type        = map(string)
  default     = {}
}
