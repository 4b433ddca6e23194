package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const iamDir = "deployment/iam"

// iamVars are example values for every placeholder the IAM templates use,
// in the account of the AWS fake below.
var iamVars = map[string]string{
	"AWS_ACCOUNT_ID":    "111122223333",
	"AWS_REGION":        "us-east-1",
	"CLUSTER_NAME":      "my-cluster",
	"OIDC_PROVIDER":     "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
	"NAMESPACE":         "irsa-example",
	"SERVICE_ACCOUNT":   "app",
	"SECRET_PREFIX":     "app/prod/",
	"PARAMETER_PREFIX":  "app/prod/",
	"PARAMETER_PATH":    "app/prod",
	"KMS_KEY_ID":        "1234abcd-12ab-34cd-56ef-1234567890ab",
	"ROLE_NAME":         "irsa-example-app",
	"TARGET_ACCOUNT_ID": "444455556666",
	"TARGET_ROLE_NAME":  "shared-secrets-reader",
	"EXTERNAL_ID":       "irsa-example",
}

var placeholder = regexp.MustCompile(`\$\{([A-Z_]+)\}`)

// iamPolicy is the IAM policy grammar the templates may use.
type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Principal map[string]stringOrList
		Action    stringOrList
		Resource  stringOrList
		Condition map[string]map[string]stringOrList
	}
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// iamFile reads a template with the example values filled in, as
// `envsubst` would.
func iamFile(t testing.TB, name string, vars map[string]string) (iamPolicy, string) {
	t.Helper()
	raw := string(readFile(t, filepath.Join(iamDir, name)))
	filled := placeholder.ReplaceAllStringFunc(raw, func(m string) string {
		v, ok := vars[placeholder.FindStringSubmatch(m)[1]]
		if !ok {
			t.Errorf("%s: %s has no value", name, m)
		}
		return v
	})
	dec := json.NewDecoder(strings.NewReader(filled))
	dec.DisallowUnknownFields()
	var p iamPolicy
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: not a policy of the expected grammar: %v", name, err)
	}
	return p, filled
}

func iamFiles(t testing.TB, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoRoot(t), iamDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// noResourceLevel are actions AWS authorises only against "*".
var noResourceLevel = []string{"secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"}

var arnPatterns = map[string]*regexp.Regexp{
	"secretsmanager": regexp.MustCompile(`^arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+\*$`),
	"ssm":            regexp.MustCompile(`^arn:aws:ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9/_.-]+(/?\*)?$`),
	"kms":            regexp.MustCompile(`^arn:aws:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$`),
	"sts":            regexp.MustCompile(`^arn:aws:iam::\d{12}:role/[A-Za-z0-9+=,.@_-]+$`),
}

func TestIAMPermissionPolicies(t *testing.T) {
	files := iamFiles(t, "policy-")
	if len(files) < 4 {
		t.Fatalf("only %v", files)
	}
	granted := map[string]bool{}
	for _, name := range files {
		p, _ := iamFile(t, name, iamVars)
		if p.Version != "2012-10-17" || len(p.Statement) == 0 {
			t.Errorf("%s: Version %q, %d statements", name, p.Version, len(p.Statement))
		}
		for _, st := range p.Statement {
			if st.Effect != "Allow" || st.Principal != nil || len(st.Action) == 0 || len(st.Resource) == 0 {
				t.Errorf("%s: statement %q: want Allow, actions and resources, no principal", name, st.Sid)
			}
			for _, a := range st.Action {
				granted[a] = true
				service, op, _ := strings.Cut(a, ":")
				if strings.Contains(op, "*") || op == "" {
					t.Errorf("%s: wildcard action %s", name, a)
				}
				for _, r := range st.Resource {
					switch {
					case r == "*" && slices.Contains(noResourceLevel, a):
					case r == "*":
						t.Errorf("%s: %s on every resource; it has resource-level permissions", name, a)
					case arnPatterns[service] == nil || !arnPatterns[service].MatchString(r):
						t.Errorf("%s: %s on %q: not a %s ARN of the expected form", name, a, r, service)
					}
				}
			}
		}
	}

	// Exactly what coffer calls: every AWS action its fetch code names is
	// granted by some file, and nothing else is (kms:Decrypt happens inside
	// Secrets Manager and SSM; ListSecrets inside a filtered batch call;
	// sts:AssumeRole is the pod role's, for assumeRoleArn).
	calls := map[string]bool{"kms:Decrypt": true, "secretsmanager:ListSecrets": true, "sts:AssumeRole": true}
	literal := regexp.MustCompile(`"((?:secretsmanager|ssm):[A-Za-z]+)`)
	srcs, _ := filepath.Glob(filepath.Join(repoRoot(t), "provider", "fetch", "*.go"))
	for _, f := range srcs {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			calls[m[1]] = true
		}
	}
	for a := range calls {
		if !granted[a] {
			t.Errorf("coffer calls %s; no policy in %s grants it", a, iamDir)
		}
	}
	for a := range granted {
		if !calls[a] {
			t.Errorf("%s grants %s, which coffer never calls", iamDir, a)
		}
	}
}

func TestIAMTrustPolicies(t *testing.T) {
	oidc := iamVars["OIDC_PROVIDER"]
	for _, tc := range []struct {
		file, principalKey, principal string
		actions                       []string
		conditions                    map[string]string
	}{
		{"trust-irsa.json", "Federated", "arn:aws:iam::111122223333:oidc-provider/" + oidc, []string{"sts:AssumeRoleWithWebIdentity"},
			map[string]string{oidc + ":sub": "system:serviceaccount:irsa-example:app", oidc + ":aud": "sts.amazonaws.com"}},
		{"trust-pod-identity.json", "Service", "pods.eks.amazonaws.com", []string{"sts:AssumeRole", "sts:TagSession"},
			map[string]string{"aws:SourceAccount": "111122223333", "aws:SourceArn": "arn:aws:eks:us-east-1:111122223333:cluster/my-cluster"}},
		{"trust-cross-account.json", "AWS", "arn:aws:iam::111122223333:role/irsa-example-app", []string{"sts:AssumeRole"},
			map[string]string{"sts:ExternalId": "irsa-example"}},
	} {
		p, _ := iamFile(t, tc.file, iamVars)
		if p.Version != "2012-10-17" || len(p.Statement) != 1 {
			t.Fatalf("%s: Version %q, %d statements", tc.file, p.Version, len(p.Statement))
		}
		st := p.Statement[0]
		if st.Effect != "Allow" || len(st.Resource) > 0 {
			t.Errorf("%s: effect %s, resources %v", tc.file, st.Effect, st.Resource)
		}
		if got := st.Principal[tc.principalKey]; !slices.Equal(got, []string{tc.principal}) || len(st.Principal) != 1 {
			t.Errorf("%s: principal %v, want %s %s", tc.file, st.Principal, tc.principalKey, tc.principal)
		}
		if !slices.Equal(st.Action, tc.actions) {
			t.Errorf("%s: actions %v, want %v", tc.file, st.Action, tc.actions)
		}
		got := map[string]string{}
		for _, kv := range st.Condition {
			for k, v := range kv {
				got[k] = strings.Join(v, ",")
			}
		}
		for k, v := range tc.conditions {
			if got[k] != v {
				t.Errorf("%s: condition %s = %q, want %q", tc.file, k, got[k], v)
			}
		}
	}
}

// TestIAMVariablesDocumented: every placeholder is explained in the
// directory's README.
func TestIAMVariablesDocumented(t *testing.T) {
	readme := string(readFile(t, iamDir+"/README.md"))
	for _, name := range iamFiles(t, "") {
		for _, m := range placeholder.FindAllStringSubmatch(string(readFile(t, filepath.Join(iamDir, name))), -1) {
			if !strings.Contains(readme, "`"+m[1]+"`") {
				t.Errorf("%s uses ${%s}, which %s/README.md does not explain", name, m[1], iamDir)
			}
		}
	}
}

// TestIAMPoliciesMountExamples: the bundled AWS fake enforces IAM
// (actions, resources, BatchGetSecretValue's per-secret check). An identity
// holding exactly the policies mounts the examples; without a needed policy
// the mount fails with access denied, so the policies are enough and each
// is needed. (KMS is not modelled by the fake.)
func TestIAMPoliciesMountExamples(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "fakeaws")
	build := exec.Command("go", "build", "-o", fake, "./tests/fakeaws/cmd/fakeaws")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the AWS fake: %v\n%s", err, out)
	}

	// A class with the extensions, beside the examples.
	extensions := filepath.Join(dir, "extensions.yaml")
	if err := os.WriteFile(extensions, []byte(`
region: us-east-1
objects: |
  - path: /app/prod/
    objectAlias: params
  - objectAlias: secrets
    filters:
      - {key: name, values: ["app/prod/"]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	examples := []string{
		"deployment/examples/irsa/secretproviderclass.yaml",
		"deployment/examples/pod-identity/secretproviderclass.yaml",
		"deployment/examples/jmespath/secretproviderclass.yaml",
		"deployment/examples/sync/secretproviderclass.yaml",
		"deployment/examples/sync-controller/secretproviderclass.yaml",
	}
	base := []string{"policy-secretsmanager.json", "policy-parameterstore.json"}
	for _, tc := range []struct {
		name     string
		policies []string
		spcs     []string
		denied   string // empty: every mount succeeds
	}{
		{"examples, with batching", append(slices.Clone(base), "policy-batch.json"), examples, ""},
		{"examples, without batching", base, examples, ""},
		{"examples, without Parameter Store", []string{"policy-secretsmanager.json", "policy-batch.json"}, examples[:1], "ssm:GetParameters"},
		{"examples, without Secrets Manager", []string{"policy-parameterstore.json", "policy-batch.json"}, examples[:1], "secretsmanager:"},
		{"extensions", append(slices.Clone(base), "policy-parameterstore-path.json", "policy-secretsmanager-filters.json"), []string{extensions}, ""},
		{"extensions, without the path policy", append(slices.Clone(base), "policy-secretsmanager-filters.json"), []string{extensions}, "ssm:GetParametersByPath"},
		{"extensions, without the filters policy", append(slices.Clone(base), "policy-parameterstore-path.json", "policy-batch.json"), []string{extensions}, "secretsmanager:ListSecrets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startFake(t, fake, tc.policies)
			for _, spc := range tc.spcs {
				out := t.TempDir()
				cmd := exec.Command(cofferBinary(t), "mount", "--spc", spc, "--out", out, "--timeout", "20s")
				cmd.Dir = root
				cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+url, "AWS_ACCESS_KEY_ID=AKIDAPP", "AWS_SECRET_ACCESS_KEY=app-secret-key",
					"AWS_REGION=us-east-1", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_MAX_ATTEMPTS=1")
				got, err := cmd.CombinedOutput()
				switch {
				case tc.denied == "" && err != nil:
					t.Errorf("with %v, mounting %s: %v\n%s", tc.policies, spc, err, got)
				case tc.denied != "" && err == nil:
					t.Errorf("with %v, mounting %s succeeded; want access denied on %s", tc.policies, spc, tc.denied)
				case tc.denied != "":
					t.Logf("without it: %s", strings.TrimSpace(string(got)))
				case tc.denied != "" && (!strings.Contains(string(got), "access denied") || !strings.Contains(string(got), tc.denied)):
					t.Errorf("with %v, mounting %s failed, but not with access denied on %s:\n%s", tc.policies, spc, tc.denied, got)
				}
			}
		})
	}
}

// startFake serves the AWS fake with the example data and one identity
// holding the statements of the given policy files.
func startFake(t *testing.T, bin string, policies []string) string {
	t.Helper()
	type statement struct {
		Actions   []string `json:"actions"`
		Resources []string `json:"resources"`
	}
	var sts []statement
	for _, name := range policies {
		p, _ := iamFile(t, name, iamVars)
		for _, st := range p.Statement {
			sts = append(sts, statement{Actions: st.Action, Resources: st.Resource})
		}
	}
	seed := map[string]any{
		"identities": []any{map[string]any{
			"accessKeyId": "AKIDAPP", "secretAccessKey": "app-secret-key",
			"name": "arn:aws:iam::111122223333:user/app", "statements": sts,
		}},
		"secrets": []any{
			map[string]any{"region": "us-east-1", "name": "app/prod/api-key", "string": "example-api-key"},
			map[string]any{"region": "us-east-1", "name": "app/prod/db", "string": `{"username":"app","password":"example-password","port":5432}`},
			map[string]any{"region": "us-east-1", "name": "other/db", "string": "not for this role"},
		},
		"parameters": []any{
			map[string]any{"region": "us-east-1", "name": "/app/prod/db-host", "type": "String", "values": []string{"db.internal"}},
			map[string]any{"region": "us-east-1", "name": "/app/prod/token", "type": "SecureString", "values": []string{"example-token"}},
		},
	}
	dir := t.TempDir()
	b, err := yaml.Marshal(seed)
	if err != nil {
		t.Fatal(err)
	}
	seedPath, ready := filepath.Join(dir, "seed.yaml"), filepath.Join(dir, "url")
	if err := os.WriteFile(seedPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--seed", seedPath, "--ready-file", ready, "--account-id", iamVars["AWS_ACCOUNT_ID"])
	logf, _ := os.Create(filepath.Join(dir, "fake.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "fake.log"))
			t.Logf("AWS fake log:\n%s", log)
		}
	})
	for range 100 {
		if url, err := os.ReadFile(ready); err == nil && len(url) > 0 {
			return strings.TrimSpace(string(url))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the AWS fake did not start")
	return ""
}
