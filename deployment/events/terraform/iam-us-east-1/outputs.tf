output "forward_rule_arn" {
  value = aws_cloudwatch_event_rule.iam_roles_forward.arn
}
