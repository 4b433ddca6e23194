package e2e

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// Every secret and parameter value in the suite starts with canaryPrefix,
// and no name does: after the run, no component's log may contain it.
const canaryPrefix = "canary-"

// Fixed Secrets Manager VersionIds of the seed, so classes can pin them.
const (
	apiKeyV1 = "a1a1a1a1-1111-4111-8111-111111111111"
	apiKeyV2 = "b2b2b2b2-2222-4222-8222-222222222222"
)

// tlsBytes is a binary secret: not UTF-8, written to the file as is.
var tlsBytes = []byte("\x00\xff" + canaryPrefix + "mixed-tls\x80\x01")

// role is a seed role: who may assume it, and what it may read.
type role struct {
	name      string
	subjects  []string // token subjects (IRSA); empty for Pod Identity roles
	audiences []string
	resources []string // secret and parameter ARN patterns
	actions   []string // default readActions
}

// readActions are the permissions docs/install.md documents for coffer's roles:
// no BatchGetSecretValue, so coffer must cope without it.
var readActions = []string{"secretsmanager:GetSecretValue", "ssm:GetParameters"}

func secretARN(pattern string) string {
	return "arn:aws:secretsmanager:*:123456789012:secret:" + pattern
}

func parameterARN(pattern string) string {
	return "arn:aws:ssm:*:123456789012:parameter/" + strings.TrimPrefix(pattern, "/")
}

func sa(ns, name string) string { return "system:serviceaccount:" + ns + ":" + name }

// probeRole is a role without permissions that coffer's own ServiceAccount
// may assume: the suite checks with it that STS accepts the cluster's
// tokens before any test runs.
const probeRole = "e2e-federation-probe"

var seedRoles = []role{
	{name: probeRole, subjects: []string{sa(cofferNamespace, cofferSA)}},
	{name: "mixed-app", subjects: []string{sa("e2e-mixed", "app")}, resources: []string{secretARN("mixed/*"), parameterARN("/mixed/*")}},
	{name: "rotation-app", subjects: []string{sa("e2e-rotation", "app")}, resources: []string{secretARN("rotation/*"), parameterARN("/rotation/*")}},
	{name: "sync-app", subjects: []string{sa("e2e-sync", "app")}, resources: []string{secretARN("sync/*"), parameterARN("/sync/*")}},
	{name: "iso-a", subjects: []string{sa("e2e-isolation", "team-a")}, resources: []string{secretARN("iso/a-*")}},
	{name: "iso-b", subjects: []string{sa("e2e-isolation", "team-b")}, resources: []string{secretARN("iso/b-*")}},
	{name: "misconfig-app", subjects: []string{sa("e2e-misconfig", "app"), sa("e2e-misconfig", "plain")}, resources: []string{secretARN("misconfig/*")}},
	{name: "restart-app", subjects: []string{sa("e2e-restart", "app")}, resources: []string{secretARN("restart/*")}},
	{name: "rollout-app", subjects: []string{sa("e2e-rollout", "app")}, resources: []string{secretARN("rollout/*")}},
	{name: "pi-app", audiences: []string{audPodIdentity}, resources: []string{secretARN("pi/*"), parameterARN("/pi/*")}},
	// Secret sync: the controller reads as reader, a mount as app.
	{name: "secretsync-reader", subjects: []string{sa("e2e-secretsync", "reader")}, resources: []string{secretARN("dev/*"), secretARN("ss/*")}},
	{name: "mountsync-app", subjects: []string{sa("e2e-mountsync", "app")}, resources: []string{secretARN("ms/*")}},
	{name: "synclife-reader", subjects: []string{sa("e2e-synclife", "reader")}, resources: []string{secretARN("sl/*")}},
	{name: "election-reader", subjects: []string{sa("e2e-election", "reader")}, resources: []string{secretARN("el/*")}},
	// Hostile classes (scenario 14): the attacker reads its inputs, the
	// benign namespace its own.
	{name: "hostile-attacker", subjects: []string{sa("e2e-hostile", "attacker")}, resources: []string{secretARN("hx/*")}},
	{name: "hostile-benign", subjects: []string{sa("e2e-benign", "reader")}, resources: []string{secretARN("hx/benign*")}},
	// coffer's extensions: selecting by path and filters needs more actions,
	// and BatchGetSecretValue and ListSecrets have no resource-level grants.
	{name: "ext-app", subjects: []string{sa("e2e-extensions", "app")}, resources: []string{"*"},
		actions: []string{"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets", "ssm:GetParameters", "ssm:GetParametersByPath"}},
	// Change events: the pod's role; the consumer is an IAM user (below).
	{name: "events-app", subjects: []string{sa("e2e-events", "app")}, resources: []string{secretARN("events/*"), parameterARN("/events/*")},
		actions: []string{"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue", "ssm:GetParameters"}},
	// 12. templated files and optional objects: nothing outside files/.
	{name: "files-app", subjects: []string{sa("e2e-files", "app")}, resources: []string{secretARN("files/*"), parameterARN("/files/*")}},
}

// fakeSeed is the AWS fake's seed: an administrator for the tests' own
// changes, the scenarios' roles, and their secrets and parameters.
func fakeSeed() string {
	var b strings.Builder
	fmt.Fprintf(&b, `identities:
  - accessKeyId: %s
    secretAccessKey: %s
    name: arn:aws:iam::123456789012:user/e2e-admin
    actions: ["*"]
    resources: ["*"]
  - accessKeyId: %s
    secretAccessKey: %s
    name: arn:aws:iam::123456789012:user/e2e-coffer-events
    statements:
      - {actions: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], resources: ["arn:aws:sqs:%s:123456789012:%s"]}
      - {actions: ["ssm:PutParameter"], resources: ["arn:aws:ssm:%s:123456789012:parameter/coffer/canary"]}
      - {actions: ["secretsmanager:UpdateSecret"], resources: ["arn:aws:secretsmanager:%s:123456789012:secret:coffer/canary-*"]}
queues:
  - {region: %s, name: %s, eventSources: [aws.ssm, aws.secretsmanager, aws.iam]}
roles:
`, adminKeyID, adminSecret, eventsKeyID, eventsSecret, eventsRegion, eventsQueue, eventsRegion, eventsRegion, eventsRegion, eventsQueue)
	for _, r := range seedRoles {
		fmt.Fprintf(&b, "  - arn: %s\n", roleARN(r.name))
		if len(r.subjects) > 0 {
			fmt.Fprintf(&b, "    trustedSubjects: %s\n", yamlList(r.subjects))
		}
		if len(r.audiences) > 0 {
			fmt.Fprintf(&b, "    trustedAudiences: %s\n", yamlList(r.audiences))
		}
		actions := r.actions
		if actions == nil {
			actions = readActions
		}
		fmt.Fprintf(&b, "    actions: %s\n    resources: %s\n", yamlList(actions), yamlList(r.resources))
	}
	fmt.Fprintf(&b, `podIdentityAssociations:
  - {namespace: e2e-podidentity, serviceAccount: app, roleArn: %s}
`, roleARN("pi-app"))
	b.WriteString(`secrets:
  # 1. mixed objects; eu-west-1 is the node's region, the classes name none.
  - region: eu-west-1
    name: mixed/db
    string: '{"username":"app","password":"canary-mixed-db-pw","port":5432}'
  - region: eu-west-1
    name: mixed/tls
    binary: ` + base64.StdEncoding.EncodeToString(tlsBytes) + `
  - region: eu-west-1
    name: mixed/api-key
    versions:
      - {versionId: ` + apiKeyV1 + `, string: canary-mixed-api-key-v1}
      - {versionId: ` + apiKeyV2 + `, string: canary-mixed-api-key-v2}
  # 2. rotation
  - {region: us-east-1, name: rotation/db, string: '{"password":"canary-rot-pw-1"}'}
  - {region: us-east-1, name: rotation/static, string: canary-rot-static}
  # 3. secret sync
  - {region: us-east-1, name: sync/db, string: '{"username":"canary-sync-user","password":"canary-sync-pw-1"}'}
  # 4. isolation
  - {region: us-east-1, name: iso/a-token, string: canary-iso-a}
  - {region: us-east-1, name: iso/b-token, string: canary-iso-b}
  # 5. misconfiguration
  - {region: us-east-1, name: misconfig/db, string: canary-misconfig}
  # 6. restart
  - {region: us-east-1, name: restart/db, string: canary-restart-1}
  - {region: us-east-1, name: rollout/db, string: canary-rollout-1}
  # 7. Pod Identity
  - {region: us-east-1, name: pi/db, string: '{"password":"canary-pi-pw"}'}
  # Change events (not a value: the consumer writes its description)
  - {region: eu-west-3, name: coffer/canary, string: liveness-check}
  - {region: eu-west-3, name: events/db, string: canary-events-db-1}
  - {region: eu-west-3, name: events/api, string: canary-events-api-1}
parameters:
  - {region: eu-west-1, name: /mixed/host, value: canary-mixed-host.internal}
  - {region: eu-west-1, name: /mixed/token, type: SecureString, value: canary-mixed-token}
  - region: eu-west-1
    name: /mixed/feature
    values: [canary-mixed-feature-v1, canary-mixed-feature-v2, canary-mixed-feature-v3]
    labels: {stable: 1}
  - {region: us-east-1, name: /rotation/param, value: canary-rot-param-1}
  - {region: us-east-1, name: /rotation/static-param, type: SecureString, value: canary-rot-static-param}
  - {region: us-east-1, name: /sync/host, value: canary-sync-host}
  - {region: us-east-1, name: /pi/param, type: SecureString, value: canary-pi-param}
  - {region: eu-west-3, name: /events/host, value: canary-events-host-1}
`)
	return b.String()
}

func yamlList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// secretValuesInLogs returns the log lines of every component that contain
// a secret or parameter value.
func (c *cluster) secretValuesInLogs() string {
	var b strings.Builder
	for _, p := range c.procs.Procs() {
		for i, line := range strings.Split(p.LogSince(0), "\n") {
			// The harness's own first line is the command line (whose
			// flags, such as --canary-interval, may contain the prefix).
			if strings.Contains(line, canaryPrefix) && !strings.HasPrefix(line, "=== harness: ") {
				if len(line) > 300 {
					line = line[:300] + "..."
				}
				fmt.Fprintf(&b, "%s:%d: %s\n", p.LogPath, i+1, line)
			}
		}
	}
	return b.String()
}
