# coffer change events: IAM role changes, forwarded from us-east-1, as
# ../../cloudformation-iam-us-east-1.yaml. Apply with a provider in
# us-east-1, and only when the queue is in another region.
#
# IAM is a global service: EventBridge delivers its CloudTrail events to
# us-east-1's default event bus only. This rule matches the same IAM pattern
# as the queue region's iam_roles rule and sends the events, unchanged, to
# that region's default event bus, where that rule passes them to the queue.

data "aws_region" "current" {
  lifecycle {
    postcondition {
      condition     = self.id == "us-east-1"
      error_message = "IAM's events arrive in us-east-1: apply this module with a us-east-1 provider."
    }
  }
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "trust" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "put_events" {
  statement {
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [var.target_event_bus_arn]
  }
}

resource "aws_iam_role" "forward" {
  name               = "coffer-events-${var.cluster_name}-iam-forward"
  description        = "EventBridge forwards IAM role changes to the coffer events queue's region"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "forward" {
  name   = "put-events-on-the-queue-region-bus"
  role   = aws_iam_role.forward.id
  policy = data.aws_iam_policy_document.put_events.json
}

resource "aws_cloudwatch_event_rule" "iam_roles_forward" {
  name          = "coffer-${var.cluster_name}-iam-roles-forward"
  description   = "IAM role changes, forwarded to the coffer events queue's region"
  event_pattern = file("${path.module}/../../patterns/iam-role-change.json")
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "queue_region_bus" {
  rule      = aws_cloudwatch_event_rule.iam_roles_forward.name
  target_id = "queue-region-bus"
  arn       = var.target_event_bus_arn
  role_arn  = aws_iam_role.forward.arn
}
