package events_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The consumer's permissions (docs/events.md): what coffer-controller
// events calls, each on one resource.
var consumerActions = map[string][]string{
	"queue":            {"sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"},
	"canary parameter": {"ssm:PutParameter"},
	"canary secret":    {"secretsmanager:UpdateSecret"},
}

// cfnTemplate is the part of a CloudFormation template the tests read.
type cfnTemplate struct {
	Parameters map[string]struct {
		Default string `yaml:"Default"`
	} `yaml:"Parameters"`
	Resources map[string]struct {
		Type       string         `yaml:"Type"`
		Properties map[string]any `yaml:"Properties"`
	} `yaml:"Resources"`
}

func loadTemplate(t *testing.T, path string) cfnTemplate {
	t.Helper()
	var tmpl cfnTemplate
	if err := yaml.Unmarshal(readFile(t, path), &tmpl); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return tmpl
}

// ref renders an intrinsic function as the text of an Fn::Sub: Ref X is
// ${X}, Fn::GetAtt [X, Arn] is ${X.Arn}, Fn::Sub s is s. Two resources
// render alike exactly when CloudFormation resolves them alike. Anything
// else fails the test: the templates use only these.
func ref(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if len(v) == 1 {
			for fn, arg := range v {
				switch fn {
				case "Ref":
					return "${" + arg.(string) + "}"
				case "Fn::Sub":
					if s, ok := arg.(string); ok {
						return s
					}
				case "Fn::GetAtt":
					if a, ok := arg.([]any); ok && len(a) == 2 {
						return fmt.Sprintf("${%v.%v}", a[0], a[1])
					}
				}
			}
		}
	}
	t.Fatalf("%v is not a string, Ref, Fn::GetAtt or Fn::Sub", v)
	return ""
}

// refs renders a string or list of them.
func refs(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]string, len(list))
	for i, e := range list {
		out[i] = ref(t, e)
	}
	sort.Strings(out)
	return out
}

// asJSON is v as encoding/json would decode it (YAML's types made JSON's).
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTemplatesEmbedThePatterns: every EventBridge rule of both
// CloudFormation templates is one of patterns/, verbatim, and every rule of
// the Terraform module reads one with file(): the three installs match the
// same events.
func TestTemplatesEmbedThePatterns(t *testing.T) {
	patterns := loadPatterns(t)
	for _, tc := range []struct {
		file  string
		rules map[string]string // logical ID → pattern
	}{
		{"cloudformation.yaml", map[string]string{"ParameterStoreRule": parameterStore, "SecretsManagerRule": secretsManager, "IAMRoleRule": iamRoles}},
		{"cloudformation-iam-us-east-1.yaml", map[string]string{"IAMRoleForwardRule": iamRoles}},
	} {
		tmpl := loadTemplate(t, tc.file)
		found := map[string]bool{}
		for id, r := range tmpl.Resources {
			if r.Type != "AWS::Events::Rule" {
				continue
			}
			found[id] = true
			name, ok := tc.rules[id]
			if !ok {
				t.Errorf("%s: rule %s is not one the test knows", tc.file, id)
				continue
			}
			if got, want := asJSON(t, r.Properties["EventPattern"]), asJSON(t, patterns[name]); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s's EventPattern is not patterns/%s.json:\n got %v\nwant %v", tc.file, id, name, got, want)
			}
			if r.Properties["State"] != "ENABLED" {
				t.Errorf("%s: %s's State is %v, want ENABLED (not ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS: no read-only events)", tc.file, id, r.Properties["State"])
			}
		}
		if got, want := keys(found), keys(tc.rules); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: rules %v, want %v", tc.file, got, want)
		}
	}

	for _, tc := range []struct {
		file  string
		rules map[string]string // resource name → pattern
	}{
		{"terraform/main.tf", map[string]string{"parameter_store": parameterStore, "secretsmanager": secretsManager, "iam_roles": iamRoles}},
		{"terraform/iam-us-east-1/main.tf", map[string]string{"iam_roles_forward": iamRoles}},
	} {
		hcl := string(readFile(t, tc.file))
		got := map[string]string{}
		for name, body := range hclBlocks(t, hcl, `resource "aws_cloudwatch_event_rule"`) {
			m := regexp.MustCompile(`(?m)^\s*event_pattern\s*=\s*file\("\$\{(local\.patterns|path\.module\}/\.\./\.\./patterns)\}?/([a-z-]+)\.json"\)\s*$`).FindStringSubmatch(body)
			if m == nil {
				t.Errorf("%s: rule %s does not read its event_pattern from a file under patterns/", tc.file, name)
				continue
			}
			got[name] = m[2]
		}
		if !reflect.DeepEqual(got, tc.rules) {
			t.Errorf("%s: rules read %v, want %v", tc.file, got, tc.rules)
		}
	}
	if !strings.Contains(string(readFile(t, "terraform/main.tf")), `patterns = "${path.module}/../patterns"`) {
		t.Error(`terraform/main.tf: local.patterns is not "${path.module}/../patterns"`)
	}
}

// cfnStatement is one statement of an IAM policy in a template.
type cfnStatement struct {
	Effect    string
	Principal map[string]any
	Action    any
	Resource  any
	Condition map[string]map[string]any
}

func statements(t *testing.T, doc any) []cfnStatement {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Version   string
		Statement []cfnStatement
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a policy: %v", err)
	}
	if p.Version != "2012-10-17" {
		t.Errorf("policy Version %q", p.Version)
	}
	return p.Statement
}

// TestCloudFormationConsumerRole: the consumer's role grants exactly the
// actions coffer-controller events needs, each on exactly its resource,
// and only the events ServiceAccount may assume it.
func TestCloudFormationConsumerRole(t *testing.T) {
	tmpl := loadTemplate(t, "cloudformation.yaml")
	role := tmpl.Resources["ConsumerRole"].Properties
	policies, _ := role["Policies"].([]any)
	if len(policies) != 1 || role["ManagedPolicyArns"] != nil {
		t.Fatalf("ConsumerRole: %d inline policies and managed %v, want one inline policy", len(policies), role["ManagedPolicyArns"])
	}
	canary := ref(t, tmpl.Resources["CanaryParameter"].Properties["Name"])
	resources := map[string]string{
		"queue":            "${Queue.Arn}",
		"canary parameter": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter" + canary,
		"canary secret":    "${CanarySecret}", // Ref of a secret is its ARN
	}
	got := map[string][]string{}
	for _, st := range statements(t, policies[0].(map[string]any)["PolicyDocument"]) {
		if st.Effect != "Allow" || st.Principal != nil || st.Condition != nil {
			t.Errorf("statement %+v: want a plain Allow", st)
		}
		for _, r := range refs(t, st.Resource) {
			got[r] = append(got[r], refs(t, st.Action)...)
		}
	}
	want := map[string][]string{}
	for what, actions := range consumerActions {
		want[resources[what]] = actions
	}
	for r := range got {
		sort.Strings(got[r])
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ConsumerRole grants\n%v\nwant exactly\n%v", got, want)
	}

	trust := ref(t, role["AssumeRolePolicyDocument"])
	var doc any
	if err := json.Unmarshal([]byte(trust), &doc); err != nil {
		t.Fatalf("AssumeRolePolicyDocument: %v", err)
	}
	sts := statements(t, doc)
	if len(sts) != 1 {
		t.Fatalf("trust: %d statements", len(sts))
	}
	st := sts[0]
	if st.Effect != "Allow" || !reflect.DeepEqual(st.Principal, map[string]any{"Federated": "${OIDCProviderARN}"}) || st.Action != "sts:AssumeRoleWithWebIdentity" {
		t.Errorf("trust statement %+v", st)
	}
	if want := map[string]map[string]any{"StringEquals": {
		"${OIDCProvider}:sub": "system:serviceaccount:${Namespace}:${ServiceAccountName}",
		"${OIDCProvider}:aud": "sts.amazonaws.com",
	}}; !reflect.DeepEqual(st.Condition, want) {
		t.Errorf("trust condition %v, want %v", st.Condition, want)
	}
	if d := tmpl.Parameters["ServiceAccountName"].Default; d != "coffer-events" {
		t.Errorf("ServiceAccountName defaults to %q, want the chart's coffer-events", d)
	}
	if got, want := ref(t, tmpl.Resources["CanarySecret"].Properties["Name"]), "coffer/canary/${ClusterName}"; got != want {
		t.Errorf("CanarySecret is named %s, want %s", got, want)
	}
	if want := "/coffer/canary/${ClusterName}"; canary != want {
		t.Errorf("CanaryParameter is named %s, want %s", canary, want)
	}
}

// TestCloudFormationQueue: the queue is encrypted with SQS's own keys and
// keeps a day; only EventBridge may send to it, and only for this stack's
// rules, each of which targets the queue alone.
func TestCloudFormationQueue(t *testing.T) {
	tmpl := loadTemplate(t, "cloudformation.yaml")
	q := tmpl.Resources["Queue"].Properties
	if q["SqsManagedSseEnabled"] != true || q["MessageRetentionPeriod"] != 86400 {
		t.Errorf("Queue: SqsManagedSseEnabled %v, MessageRetentionPeriod %v", q["SqsManagedSseEnabled"], q["MessageRetentionPeriod"])
	}
	var rules []string
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Events::Rule" {
			continue
		}
		rules = append(rules, "${"+id+".Arn}")
		targets, _ := r.Properties["Targets"].([]any)
		if len(targets) != 1 {
			t.Errorf("%s: %d targets, want the queue", id, len(targets))
			continue
		}
		target := targets[0].(map[string]any)
		if ref(t, target["Arn"]) != "${Queue.Arn}" || target["RoleArn"] != nil {
			t.Errorf("%s: target %v, want the queue without a role (the queue policy admits it)", id, target)
		}
	}
	sort.Strings(rules)

	policy := tmpl.Resources["QueuePolicy"].Properties
	if got := refs(t, policy["Queues"]); !reflect.DeepEqual(got, []string{"${Queue}"}) {
		t.Errorf("QueuePolicy applies to %v", got)
	}
	sts := statements(t, policy["PolicyDocument"])
	if len(sts) != 1 {
		t.Fatalf("QueuePolicy: %d statements, want 1", len(sts))
	}
	st := sts[0]
	if st.Effect != "Allow" || !reflect.DeepEqual(st.Principal, map[string]any{"Service": "events.amazonaws.com"}) {
		t.Errorf("QueuePolicy: %s to %v, want Allow to events.amazonaws.com only", st.Effect, st.Principal)
	}
	if got := refs(t, st.Action); !reflect.DeepEqual(got, []string{"sqs:SendMessage"}) {
		t.Errorf("QueuePolicy: actions %v", got)
	}
	if got := refs(t, st.Resource); !reflect.DeepEqual(got, []string{"${Queue.Arn}"}) {
		t.Errorf("QueuePolicy: resources %v", got)
	}
	if len(st.Condition) != 1 || len(st.Condition["ArnEquals"]) != 1 {
		t.Fatalf("QueuePolicy: condition %v, want ArnEquals aws:SourceArn only", st.Condition)
	}
	if got := refs(t, st.Condition["ArnEquals"]["aws:SourceArn"]); !reflect.DeepEqual(got, rules) {
		t.Errorf("QueuePolicy: aws:SourceArn %v, want this stack's rules %v", got, rules)
	}
}

// TestCloudFormationForwarding: the us-east-1 stack's rule sends IAM's
// events to the queue region's bus, through a role that may put events on
// that bus only.
func TestCloudFormationForwarding(t *testing.T) {
	tmpl := loadTemplate(t, "cloudformation-iam-us-east-1.yaml")
	rule := tmpl.Resources["IAMRoleForwardRule"].Properties
	targets, _ := rule["Targets"].([]any)
	if len(targets) != 1 {
		t.Fatalf("IAMRoleForwardRule: %d targets", len(targets))
	}
	target := targets[0].(map[string]any)
	if ref(t, target["Arn"]) != "${TargetEventBusARN}" || ref(t, target["RoleArn"]) != "${ForwardRole.Arn}" {
		t.Errorf("IAMRoleForwardRule: target %v", target)
	}
	role := tmpl.Resources["ForwardRole"].Properties
	policies, _ := role["Policies"].([]any)
	if len(policies) != 1 {
		t.Fatalf("ForwardRole: %d policies", len(policies))
	}
	sts := statements(t, policies[0].(map[string]any)["PolicyDocument"])
	if len(sts) != 1 || !reflect.DeepEqual(refs(t, sts[0].Action), []string{"events:PutEvents"}) || !reflect.DeepEqual(refs(t, sts[0].Resource), []string{"${TargetEventBusARN}"}) {
		t.Errorf("ForwardRole grants %+v, want events:PutEvents on the target bus only", sts)
	}
	trust := statements(t, role["AssumeRolePolicyDocument"])
	if len(trust) != 1 || !reflect.DeepEqual(trust[0].Principal, map[string]any{"Service": "events.amazonaws.com"}) {
		t.Errorf("ForwardRole trust %+v, want events.amazonaws.com", trust)
	}
}

// TestTerraformMatchesCloudFormation: the Terraform module grants the
// consumer the same actions on the same resources, admits the same
// senders to the queue, and configures the queue alike.
func TestTerraformMatchesCloudFormation(t *testing.T) {
	main := string(readFile(t, "terraform/main.tf"))
	docs := hclBlocks(t, main, `data "aws_iam_policy_document"`)

	resources := map[string]string{
		"queue":            "aws_sqs_queue.events.arn",
		"canary parameter": "aws_ssm_parameter.canary.arn",
		"canary secret":    "aws_secretsmanager_secret.canary.arn",
	}
	want := map[string][]string{}
	for what, actions := range consumerActions {
		want[resources[what]] = actions
	}
	got := map[string][]string{}
	for _, st := range hclBlockList(t, docs["consumer"], "statement") {
		if hclAttr(t, st, "effect") != `"Allow"` || strings.Contains(st, "principals") || strings.Contains(st, "condition") {
			t.Errorf("consumer statement %s: want a plain Allow", st)
		}
		for _, r := range hclList(t, st, "resources") {
			got[r] = append(got[r], unquote(hclList(t, st, "actions"))...)
		}
	}
	for r := range got {
		sort.Strings(got[r])
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("terraform: the consumer's policy grants\n%v\nwant exactly\n%v", got, want)
	}
	for _, s := range []string{
		`policy = data.aws_iam_policy_document.consumer.json`,
		`assume_role_policy = data.aws_iam_policy_document.trust.json`,
		`values   = ["system:serviceaccount:${var.namespace}:${var.service_account_name}"]`,
		`variable = "${var.oidc_provider}:aud"`,
		`message_retention_seconds = 86400`,
		`sqs_managed_sse_enabled   = true`,
	} {
		if !strings.Contains(main, s) {
			t.Errorf("terraform/main.tf lacks %s", s)
		}
	}
	if n := strings.Count(main, `resource "aws_iam_role_policy"`) + strings.Count(main, `aws_iam_role_policy_attachment`); n != 1 {
		t.Errorf("terraform/main.tf attaches %d policies to roles, want the consumer's one", n)
	}

	queue := hclBlockList(t, docs["queue"], "statement")
	if len(queue) != 1 {
		t.Fatalf("terraform: the queue policy has %d statements", len(queue))
	}
	st := queue[0]
	principals := hclBlockList(t, st, "principals")
	conditions := hclBlockList(t, st, "condition")
	if hclAttr(t, st, "effect") != `"Allow"` || len(principals) != 1 || len(conditions) != 1 {
		t.Fatalf("terraform: queue statement %s", st)
	}
	for _, c := range []struct{ got, want any }{
		{hclAttr(t, principals[0], "type"), `"Service"`},
		{hclList(t, principals[0], "identifiers"), []string{`"events.amazonaws.com"`}},
		{hclList(t, st, "actions"), []string{`"sqs:SendMessage"`}},
		{hclList(t, st, "resources"), []string{"aws_sqs_queue.events.arn"}},
		{hclAttr(t, conditions[0], "test"), `"ArnEquals"`},
		{hclAttr(t, conditions[0], "variable"), `"aws:SourceArn"`},
		{hclList(t, conditions[0], "values"), []string{"aws_cloudwatch_event_rule.iam_roles.arn", "aws_cloudwatch_event_rule.parameter_store.arn", "aws_cloudwatch_event_rule.secretsmanager.arn"}},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("terraform: queue policy has %v, want %v", c.got, c.want)
		}
	}
}

// TestNoWildcardResources: no policy of any install grants on "*".
func TestNoWildcardResources(t *testing.T) {
	for _, f := range []string{"cloudformation.yaml", "cloudformation-iam-us-east-1.yaml", "terraform/main.tf", "terraform/iam-us-east-1/main.tf"} {
		if m := regexp.MustCompile(`(Resource|resources|identifiers)\s*[:=]\s*\[?\s*(-\s*)?["']?\*`).FindString(string(readFile(t, f))); m != "" {
			t.Errorf("%s: %s", f, m)
		}
	}
}

// The Terraform files are read with the few shapes they use (blocks,
// attributes, lists of strings or references), not with an HCL parser: a
// shape the helpers do not know fails the test rather than passing it.

// hclBlocks returns the bodies of the blocks that open with header and a
// quoted name, by name.
func hclBlocks(t *testing.T, src, header string) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(regexp.QuoteMeta(header) + ` "([a-z_]+)" \{`)
	for _, m := range re.FindAllStringSubmatchIndex(src, -1) {
		out[src[m[2]:m[3]]] = hclBody(t, src, m[1]-1)
	}
	return out
}

// hclBlockList returns the bodies of the nested blocks called name.
func hclBlockList(t *testing.T, src, name string) []string {
	t.Helper()
	var out []string
	re := regexp.MustCompile(`(?m)^\s*` + name + ` \{`)
	for _, m := range re.FindAllStringIndex(src, -1) {
		out = append(out, hclBody(t, src, m[1]-1))
	}
	return out
}

// hclBody is the text between the brace at open and its match, skipping
// braces in strings ("${...}").
func hclBody(t *testing.T, src string, open int) string {
	t.Helper()
	depth, inString := 0, false
	for i := open; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"' && src[i-1] != '\\':
			inString = !inString
		case inString:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return src[open+1 : i]
			}
		}
	}
	t.Fatalf("unbalanced braces after %q", src[open:min(open+40, len(src))])
	return ""
}

// hclAttr is the raw value of a one-line attribute of a block body (not of
// its nested blocks).
func hclAttr(t *testing.T, body, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*` + name + `\s*=\s*(.+?)\s*$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in %s", name, body)
	}
	return m[1]
}

// hclList is a one-line list attribute's elements, sorted, strings still
// quoted.
func hclList(t *testing.T, body, name string) []string {
	t.Helper()
	v := hclAttr(t, body, name)
	if !strings.HasPrefix(v, "[") || !strings.HasSuffix(v, "]") {
		t.Fatalf("%s = %s is not a one-line list", name, v)
	}
	var out []string
	for _, e := range strings.Split(strings.Trim(v, "[]"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	sort.Strings(out)
	return out
}

func unquote(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strings.Trim(s, `"`)
	}
	return out
}
