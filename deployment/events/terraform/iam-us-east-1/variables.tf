variable "cluster_name" {
  description = "The cluster_name of the queue region's module."
  type        = string
}

variable "target_event_bus_arn" {
  description = "The event_bus_arn output of the queue region's module: that region's default event bus."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:events:[a-z0-9-]+:[0-9]{12}:event-bus/default$", var.target_event_bus_arn)) && split(":", var.target_event_bus_arn)[3] != "us-east-1"
    error_message = "target_event_bus_arn: another region's default event bus (in us-east-1, the queue region's own rule sees IAM's events; this module is not needed)."
  }
}

variable "tags" {
  description = "Tags on every resource that takes them."
  type        = map(string)
  default     = {}
}
