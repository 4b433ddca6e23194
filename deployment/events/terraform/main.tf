# coffer change events, the AWS side, in the region of the SQS queue (the
# region coffer reads): the resources of ../cloudformation.yaml, with the
# same event patterns (the files under ../patterns, which
# deployment/events/events_test.go holds equal to the template's). See
# docs/events.md.
#
# IAM is a global service: its events reach only us-east-1's default event
# bus. aws_cloudwatch_event_rule.iam_roles matches them where they arrive:
# directly when the queue is in us-east-1, otherwise once the iam-us-east-1
# module (applied with a us-east-1 provider) forwards them to this region's
# default bus.

locals {
  patterns = "${path.module}/../patterns"
  rules = {
    parameter_store = aws_cloudwatch_event_rule.parameter_store
    secretsmanager  = aws_cloudwatch_event_rule.secretsmanager
    iam_roles       = aws_cloudwatch_event_rule.iam_roles
  }
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

resource "aws_sqs_queue" "events" {
  name = "coffer-events-${var.cluster_name}"
  # A day: the consumer deletes what it read; what is left after a day is
  # older than any value a node still serves from its cache.
  message_retention_seconds = 86400
  # SQS-managed keys: EventBridge can send to the queue without a KMS key
  # policy. A customer managed key needs one (docs/events.md).
  sqs_managed_sse_enabled   = true
  receive_wait_time_seconds = 20
  tags                      = var.tags
}

data "aws_iam_policy_document" "queue" {
  statement {
    sid     = "EventBridgeRulesOnly"
    effect  = "Allow"
    actions = ["sqs:SendMessage"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    resources = [aws_sqs_queue.events.arn]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.parameter_store.arn, aws_cloudwatch_event_rule.secretsmanager.arn, aws_cloudwatch_event_rule.iam_roles.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.id
  policy    = data.aws_iam_policy_document.queue.json
}

resource "aws_cloudwatch_event_rule" "parameter_store" {
  name          = "coffer-${var.cluster_name}-parameter-store"
  description   = "Parameter Store changes, for coffer's change ledger"
  event_pattern = file("${local.patterns}/parameter-store-change.json")
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "secretsmanager" {
  name          = "coffer-${var.cluster_name}-secretsmanager"
  description   = "Secrets Manager changes (CloudTrail), for coffer's change ledger"
  event_pattern = file("${local.patterns}/secretsmanager-change.json")
  tags          = var.tags
}

resource "aws_cloudwatch_event_rule" "iam_roles" {
  name          = "coffer-${var.cluster_name}-iam-roles"
  description   = "IAM role changes (CloudTrail; forwarded from us-east-1 elsewhere), for coffer's change ledger"
  event_pattern = file("${local.patterns}/iam-role-change.json")
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "queue" {
  for_each  = local.rules
  rule      = each.value.name
  target_id = "queue"
  arn       = aws_sqs_queue.events.arn
}

# The canaries: coffer-controller events writes a fresh nonce into their
# description every --canary-interval and waits for both events to come back
# through the queue. Neither holds anything secret. Terraform leaves the
# description (and the parameter's value and version) to the consumer.
resource "aws_ssm_parameter" "canary" {
  name        = "/coffer/canary/${var.cluster_name}"
  type        = "String"
  value       = "coffer change-event canary"
  description = "coffer change-event canary (its description is a nonce)"
  tags        = var.tags

  lifecycle {
    ignore_changes = [description, value]
  }
}

resource "aws_secretsmanager_secret" "canary" {
  name        = "coffer/canary/${var.cluster_name}"
  description = "coffer change-event canary (its description is a nonce)"
  # Nothing to recover: the name is free again at once after a destroy.
  recovery_window_in_days = 0
  tags                    = var.tags

  lifecycle {
    ignore_changes = [description]
  }
}

resource "aws_secretsmanager_secret_version" "canary" {
  secret_id     = aws_secretsmanager_secret.canary.id
  secret_string = "coffer change-event canary, not a secret"
}

# The consumer's role, for IRSA: only the ServiceAccount of
# coffer-controller events may assume it, and it may do exactly what the
# consumer does, on exactly these resources.
data "aws_iam_policy_document" "trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account_name}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "consumer" {
  statement {
    sid       = "ReadTheQueue"
    effect    = "Allow"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [aws_sqs_queue.events.arn]
  }
  statement {
    sid       = "WriteTheCanaryParameter"
    effect    = "Allow"
    actions   = ["ssm:PutParameter"]
    resources = [aws_ssm_parameter.canary.arn]
  }
  statement {
    sid       = "WriteTheCanarySecret"
    effect    = "Allow"
    actions   = ["secretsmanager:UpdateSecret"]
    resources = [aws_secretsmanager_secret.canary.arn]
  }
}

resource "aws_iam_role" "consumer" {
  name               = "coffer-events-${var.cluster_name}"
  description        = "coffer-controller events (change events consumer)"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "consumer" {
  name   = "coffer-events"
  role   = aws_iam_role.consumer.id
  policy = data.aws_iam_policy_document.consumer.json
}
