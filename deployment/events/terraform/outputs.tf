output "queue_url" {
  description = "events.queueURL in the chart's values."
  value       = aws_sqs_queue.events.url
}

output "queue_arn" {
  value = aws_sqs_queue.events.arn
}

output "role_arn" {
  description = "events.serviceAccount.annotations.\"eks.amazonaws.com/role-arn\" in the chart's values."
  value       = aws_iam_role.consumer.arn
}

output "canary_parameter" {
  description = "events.canary.parameter in the chart's values."
  value       = aws_ssm_parameter.canary.name
}

output "canary_secret" {
  description = "events.canary.secret in the chart's values."
  value       = aws_secretsmanager_secret.canary.name
}

output "event_bus_arn" {
  description = "This region's default event bus: the target_event_bus_arn of the iam-us-east-1 module."
  value       = "arn:${data.aws_partition.current.partition}:events:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:event-bus/default"
}
