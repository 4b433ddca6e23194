package node

import (
	"fmt"
	"strings"
)

// Every secret value starts with canaryPrefix and no name does: no
// component's log may contain it.
const canaryPrefix = "canary-"

const (
	adminKeyID  = "AKIANODEADMIN0000000"
	adminSecret = "node-admin-secret-access-key"
	appRole     = "node-app"
)

func roleARN(name string) string { return "arn:aws:iam::123456789012:role/" + name }

func sa(ns, name string) string { return "system:serviceaccount:" + ns + ":" + name }

// trusted are the ServiceAccounts appRole trusts: "app" of each scenario's
// namespace. Nobody else may assume it.
var trusted = []string{
	sa("t-read", "app"), sa("t-identity", "app"), sa("t-fail", "app"),
	sa("t-rotate", "app"), sa("t-sync", "app"), sa("t-upgrade", "app"),
	sa("t-restart", "app"), sa("t-switch", "app"), sa("t-flux-mount", "app"),
}

// The Flux scenario's Secret sync reads AWS as ServiceAccount notifier of
// the namespace the fleet repository delivers, through the role its
// overlay's patch names; the role trusts that ServiceAccount alone.
const (
	fluxNotifierNS   = "t-flux"
	fluxNotifierRole = "node-flux-notifier"
)

// TestChangeEvents' identities: the pod's role reads its objects alone;
// the consumer's (coffer-controller events, IRSA on the chart's
// ServiceAccount) has exactly the permissions docs/events.md lists for it.
const (
	eventsAppRole      = "node-events-app"
	eventsConsumerRole = "node-events-consumer"
)

// fakeSeed: appRole's policy is the one AWS's provider documents
// (GetSecretValue and DescribeSecret, which ASCP's code calls on a remount
// when the driver passes the pod's current versions; coffer needs only
// GetSecretValue), plus ssm:GetParameters.
func fakeSeed() string {
	q := make([]string, len(trusted))
	for i, s := range trusted {
		q[i] = fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf(`identities:
  - accessKeyId: %s
    secretAccessKey: %s
    name: arn:aws:iam::123456789012:user/node-admin
    actions: ["*"]
    resources: ["*"]
roles:
  - arn: %s
    trustedSubjects: [%s]
    actions: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "ssm:GetParameters"]
    resources: ["arn:aws:secretsmanager:*:123456789012:secret:node/*", "arn:aws:ssm:*:123456789012:parameter/node/*"]
  - arn: %s
    trustedSubjects: [%q]
    actions: ["secretsmanager:GetSecretValue"]
    resources: ["arn:aws:secretsmanager:*:123456789012:secret:dev/*"]
  - arn: %[7]s
    trustedSubjects: [%[8]q]
    actions: ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "ssm:GetParameters"]
    resources: ["arn:aws:secretsmanager:us-east-1:123456789012:secret:node/events/*", "arn:aws:ssm:us-east-1:123456789012:parameter/node/events/*"]
  - arn: %[9]s
    trustedSubjects: [%[10]q]
    statements:
      - actions: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
        resources: ["arn:aws:sqs:us-east-1:123456789012:%[11]s"]
      - actions: ["ssm:PutParameter"]
        resources: ["arn:aws:ssm:us-east-1:123456789012:parameter%[12]s"]
      - actions: ["secretsmanager:UpdateSecret"]
        resources: ["arn:aws:secretsmanager:us-east-1:123456789012:secret:%[13]s-??????"]
secrets:
  - {region: us-east-1, name: node/db, string: '{"username":"canary-node-user","password":"canary-node-db-pw"}'}
  - {region: us-east-1, name: node/api-key, string: canary-node-api-key}
  - {region: us-east-1, name: node/rotating, string: canary-node-rot-1}
  - {region: us-east-1, name: node/restart, string: canary-node-restart-1}
  - {region: us-east-1, name: node/switch, string: canary-node-switch-1}
  - {region: us-east-1, name: node/flux-rotating, string: canary-node-flux-1}
  - {region: us-east-1, name: dev/slackurl, string: canary-node-slack-url}
  - {region: us-east-1, name: dev/slackchannel, string: canary-node-slack-channel}
  - {region: us-east-1, name: node/events/db, string: canary-node-events-db}
  - {region: us-east-1, name: node/events/api, string: canary-node-events-api-1}
  - {region: us-east-1, name: %[13]s, string: canary-node-events-canary-secret}
parameters:
  - {region: us-east-1, name: /node/host, value: canary-node-host}
  - {region: us-east-1, name: /node/token, type: SecureString, value: canary-node-token}
  - {region: us-east-1, name: /node/events/host, value: canary-node-events-host}
# EventBridge's rules for the change events: every write from here on is
# announced in this queue (TestChangeEvents).
queues:
  - {region: us-east-1, name: %[11]s, eventSources: [aws.ssm, aws.secretsmanager, aws.iam]}
`, adminKeyID, adminSecret, roleARN(appRole), strings.Join(q, ", "), roleARN(fluxNotifierRole), sa(fluxNotifierNS, "notifier"),
		roleARN(eventsAppRole), sa(eventsNS, eventsSA), roleARN(eventsConsumerRole), sa(releaseNS, cofferRelease+"-events"),
		eventsQueue, eventsCanaryParameter, eventsCanarySecret)
}
