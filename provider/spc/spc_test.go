package spc_test

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
	"github.com/coffer-csi/coffer/provider/spc"
)

// Names used across the cases.
const (
	smARN      = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
	smARNWest2 = "arn:aws:secretsmanager:us-west-2:123456789012:secret:prod/db-AbCdEf"
	smARNEast2 = "arn:aws:secretsmanager:us-east-2:123456789012:secret:prod/db-replica-AbCdEf"
	ssmARN     = "arn:aws:ssm:us-east-1:123456789012:parameter/app/prod/x"
	ssmARNE2   = "arn:aws:ssm:us-east-2:123456789012:parameter/app/prod/x"
	roleARN    = "arn:aws:iam::123456789012:role/app-reader"
	uuid1      = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"
	uuid2      = "EXAMPLE2-90ab-cdef-fedc-ba987EXAMPLE"
	tokens     = `{"sts.amazonaws.com":{"token":"jwt","expirationTimestamp":"2030-01-01T00:00:00Z"}}`

	// o0 is how problems name the default object.
	o0 = "objects[0] (prod/db)"
)

// validAttrs returns the attributes of a valid Mount request: the
// parameters of a minimal SecretProviderClass plus what the driver adds.
// Each case mutates its own copy.
func validAttrs() map[string]string {
	return map[string]string{
		"secretProviderClass":                      "app-secrets",
		"csi.storage.k8s.io/pod.name":              "web-0",
		"csi.storage.k8s.io/pod.namespace":         "prod",
		"csi.storage.k8s.io/pod.uid":               "0b7a7d0e-1111-2222-3333-444455556666",
		"csi.storage.k8s.io/serviceAccount.name":   "web",
		"csi.storage.k8s.io/serviceAccount.tokens": tokens,
		"csi.storage.k8s.io/ephemeral":             "false",
		"region":                                   "us-east-1",
		"objects":                                  y("- objectName: prod/db", "  objectType: secretsmanager"),
	}
}

type mutation func(map[string]string)

// y joins YAML lines.
func y(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// with sets key/value pairs.
func with(kv ...string) mutation {
	return func(a map[string]string) {
		for i := 0; i+1 < len(kv); i += 2 {
			a[kv[i]] = kv[i+1]
		}
	}
}

// without deletes keys.
func without(keys ...string) mutation {
	return func(a map[string]string) {
		for _, k := range keys {
			delete(a, k)
		}
	}
}

// objs sets the objects parameter to the given YAML lines.
func objs(lines ...string) mutation { return with("objects", y(lines...)) }

// all applies several mutations in order.
func all(ms ...mutation) mutation {
	return func(a map[string]string) {
		for _, m := range ms {
			m(a)
		}
	}
}

func attrsFor(m mutation) map[string]string {
	a := validAttrs()
	if m != nil {
		m(a)
	}
	return a
}

func mustPermission(t *testing.T, s string) fs.FileMode {
	t.Helper()
	m, err := spc.ParsePermission(s)
	if err != nil {
		t.Fatalf("ParsePermission(%q): %v", s, err)
	}
	return m
}

// obj and jm are the comparable parts of an Object and a JMESPathEntry.
type obj struct {
	Name     string
	Type     spc.ObjectType
	Alias    string
	Version  string
	Label    string
	Path     string
	Mode     fs.FileMode
	JMES     []jm
	Failover *spc.Target
}

type jm struct {
	Expr, Alias, Path string
	Mode              fs.FileMode
}

func summarize(t *testing.T, objects []*spc.Object) []obj {
	t.Helper()
	out := make([]obj, 0, len(objects))
	for i, o := range objects {
		if o.Index != i {
			t.Errorf("objects[%d].Index = %d", i, o.Index)
		}
		s := obj{Name: o.Name, Type: o.Type, Alias: o.Alias, Version: o.Version, Label: o.VersionLabel,
			Path: o.Path, Mode: o.Mode, Failover: o.Failover}
		for j, e := range o.JMESPath {
			if e.Compiled == nil {
				t.Errorf("objects[%d].JMESPath[%d] (%q) has no compiled expression", i, j, e.Expression)
			}
			s.JMES = append(s.JMES, jm{Expr: e.Expression, Alias: e.Alias, Path: e.Path, Mode: e.Mode})
		}
		out = append(out, s)
	}
	return out
}

func sm(name, path string) obj {
	return obj{Name: name, Type: spc.SecretsManager, Path: path, Mode: 0o644}
}

func ssm(name, path string) obj {
	return obj{Name: name, Type: spc.ParameterStore, Path: path, Mode: 0o644}
}

// edit returns o changed by f, to keep the expectations short.
func edit(o obj, f func(*obj)) obj {
	f(&o)
	return o
}

func TestParseValid(t *testing.T) {
	tests := map[string]struct {
		mutate mutation
		opts   spc.Options
		// optsFor builds options that need t (ParsePermission).
		optsFor func(t *testing.T) spc.Options
		want    []obj
		check   func(t *testing.T, c *spc.Config)
	}{
		"secretsmanager secret by name": {
			want: []obj{sm("prod/db", "prod_db")},
			check: func(t *testing.T, c *spc.Config) {
				if c.Region != "us-east-1" || c.FailoverRegion != "" || c.UsePodIdentity ||
					c.PreferredAddressType != "auto" || c.AssumeRoleARN != "" || c.AssumeRoleExternalID != "" {
					t.Errorf("top-level defaults wrong: %+v", c)
				}
				if c.FileCount() != 1 {
					t.Errorf("FileCount() = %d, want 1", c.FileCount())
				}
				if p := c.Objects[0].Primary(); p != (spc.Target{Name: "prod/db"}) {
					t.Errorf("Primary() = %+v", p)
				}
			},
		},
		"driver attributes fill Name, Pod and Tokens": {
			check: func(t *testing.T, c *spc.Config) {
				want := spc.Pod{Namespace: "prod", Name: "web-0", UID: "0b7a7d0e-1111-2222-3333-444455556666", ServiceAccount: "web"}
				if c.Pod != want {
					t.Errorf("Pod = %+v, want %+v", c.Pod, want)
				}
				if c.Name != "app-secrets" {
					t.Errorf("Name = %q", c.Name)
				}
				if c.Tokens != tokens {
					t.Errorf("Tokens = %q", c.Tokens)
				}
			},
		},
		"without secretProviderClass attribute (rotation in driver v1.5)": {
			mutate: without("secretProviderClass"),
			want:   []obj{sm("prod/db", "prod_db")},
			check: func(t *testing.T, c *spc.Config) {
				if c.Name != "" {
					t.Errorf("Name = %q, want empty", c.Name)
				}
			},
		},
		"ssmparameter with leading slash, default translation": {
			mutate: objs("- objectName: /app/prod/x", "  objectType: ssmparameter"),
			want:   []obj{ssm("/app/prod/x", "_app_prod_x")},
		},
		"pathTranslation False keeps directories": {
			mutate: all(with("pathTranslation", "False"), objs("- objectName: /app/prod/x", "  objectType: ssmparameter")),
			want:   []obj{ssm("/app/prod/x", "app/prod/x")},
		},
		"pathTranslation false in lower case": {
			mutate: all(with("pathTranslation", "false"), objs("- objectName: /app/prod/x", "  objectType: ssmparameter")),
			want:   []obj{ssm("/app/prod/x", "app/prod/x")},
		},
		"pathTranslation FALSE in upper case": {
			mutate: all(with("pathTranslation", "FALSE"), objs("- objectName: /app/prod/x", "  objectType: ssmparameter")),
			want:   []obj{ssm("/app/prod/x", "app/prod/x")},
		},
		"pathTranslation custom character": {
			mutate: all(with("pathTranslation", "-"), objs("- objectName: /app/prod/x", "  objectType: ssmparameter")),
			want:   []obj{ssm("/app/prod/x", "-app-prod-x")},
		},
		"pathTranslation applies to aliases": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: config/db.json"),
			want:   []obj{edit(sm("prod/db", "config_db.json"), func(o *obj) { o.Alias = "config/db.json" })},
		},
		"alias keeps directories with pathTranslation False": {
			mutate: all(with("pathTranslation", "False"),
				objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: config/db.json")),
			want: []obj{edit(sm("prod/db", "config/db.json"), func(o *obj) { o.Alias = "config/db.json" })},
		},
		"leading slash of an alias is dropped with pathTranslation False, as ASCP does": {
			mutate: all(with("pathTranslation", "False"),
				objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: /config/db")),
			want: []obj{edit(sm("prod/db", "config/db"), func(o *obj) { o.Alias = "/config/db" })},
		},
		"secretsmanager ARN without objectType": {
			mutate: objs("- objectName: " + smARN),
			want:   []obj{sm(smARN, strings.ReplaceAll(smARN, "/", "_"))},
		},
		"ssm ARN without objectType": {
			mutate: objs("- objectName: " + ssmARN),
			want:   []obj{ssm(ssmARN, strings.ReplaceAll(ssmARN, "/", "_"))},
		},
		"secretsmanager ARN with agreeing objectType": {
			mutate: objs("- objectName: "+smARN, "  objectType: secretsmanager"),
			want:   []obj{sm(smARN, strings.ReplaceAll(smARN, "/", "_"))},
		},
		"ssm ARN with agreeing objectType": {
			mutate: objs("- objectName: "+ssmARN, "  objectType: ssmparameter"),
			want:   []obj{ssm(ssmARN, strings.ReplaceAll(ssmARN, "/", "_"))},
		},
		"ARN is accepted in any region when no region is known": {
			mutate: all(without("region"), objs("- objectName: "+smARNWest2)),
			want:   []obj{sm(smARNWest2, strings.ReplaceAll(smARNWest2, "/", "_"))},
		},
		"ARN in the aws-eusc partition": {
			mutate: all(with("region", "eusc-de-east-1"),
				objs("- objectName: arn:aws-eusc:secretsmanager:eusc-de-east-1:123456789012:secret:db-AbCdEf", "  objectAlias: db")),
			want: []obj{edit(sm("arn:aws-eusc:secretsmanager:eusc-de-east-1:123456789012:secret:db-AbCdEf", "db"), func(o *obj) { o.Alias = "db" })},
		},
		"ARN in the aws-us-gov partition": {
			mutate: all(with("region", "us-gov-west-1"),
				objs("- objectName: arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/db", "  objectAlias: db")),
			want: []obj{edit(ssm("arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/db", "db"), func(o *obj) { o.Alias = "db" })},
		},
		"objectType in any case": {
			mutate: objs("- objectName: prod/db", "  objectType: SecretsManager"),
			want:   []obj{sm("prod/db", "prod_db")},
		},
		"objectAlias names the file": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: db.json"),
			want:   []obj{edit(sm("prod/db", "db.json"), func(o *obj) { o.Alias = "db.json" })},
		},
		"objectVersion on secretsmanager is a VersionId": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectVersion: "+uuid1),
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Version = uuid1 })},
		},
		"objectVersion on ssmparameter is a number": {
			mutate: objs("- objectName: /app/x", "  objectType: ssmparameter", `  objectVersion: "3"`),
			want:   []obj{edit(ssm("/app/x", "_app_x"), func(o *obj) { o.Version = "3" })},
		},
		"objectVersion as an unquoted YAML number": {
			mutate: objs("- objectName: /app/x", "  objectType: ssmparameter", "  objectVersion: 3"),
			want:   []obj{edit(ssm("/app/x", "_app_x"), func(o *obj) { o.Version = "3" })},
		},
		"objectVersionLabel on secretsmanager": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectVersionLabel: AWSPREVIOUS"),
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Label = "AWSPREVIOUS" })},
		},
		"objectVersionLabel on ssmparameter": {
			mutate: objs("- objectName: /app/x", "  objectType: ssmparameter", "  objectVersionLabel: stable"),
			want:   []obj{edit(ssm("/app/x", "_app_x"), func(o *obj) { o.Label = "stable" })},
		},
		"objectVersion and objectVersionLabel together on secretsmanager": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectVersion: "+uuid1, "  objectVersionLabel: AWSCURRENT"),
			want: []obj{edit(sm("prod/db", "prod_db"), func(o *obj) {
				o.Version, o.Label = uuid1, "AWSCURRENT"
			})},
			check: func(t *testing.T, c *spc.Config) {
				if p := c.Objects[0].Primary(); p != (spc.Target{Name: "prod/db", Version: uuid1, VersionLabel: "AWSCURRENT"}) {
					t.Errorf("Primary() = %+v", p)
				}
			},
		},
		"filePermission with four octal digits": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", `  filePermission: "0640"`),
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Mode = 0o640 })},
		},
		"filePermission with three octal digits": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", `  filePermission: "640"`),
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Mode = 0o640 })},
		},
		"filePermission as an unquoted YAML number": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  filePermission: 0400"),
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Mode = 0o400 })},
		},
		"filePermission 0777 is the maximum": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", `  filePermission: "0777"`),
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Mode = 0o777 })},
		},
		"jmesPath entries inherit the object's filePermission unless they set one": {
			mutate: objs(
				"- objectName: prod/db",
				"  objectType: secretsmanager",
				`  filePermission: "0600"`,
				"  jmesPath:",
				"    - path: username",
				"      objectAlias: db-user",
				`    - path: "credentials.password"`,
				"      objectAlias: db-pass",
				`      filePermission: "0400"`,
			),
			want: []obj{edit(sm("prod/db", "prod_db"), func(o *obj) {
				o.Mode = 0o600
				o.JMES = []jm{
					{Expr: "username", Alias: "db-user", Path: "db-user", Mode: 0o600},
					{Expr: "credentials.password", Alias: "db-pass", Path: "db-pass", Mode: 0o400},
				}
			})},
			check: func(t *testing.T, c *spc.Config) {
				if c.FileCount() != 3 {
					t.Errorf("FileCount() = %d, want 3", c.FileCount())
				}
			},
		},
		"jmesPath aliases follow pathTranslation": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager",
				"  jmesPath:", "    - path: username", "      objectAlias: db/user"),
			want: []obj{edit(sm("prod/db", "prod_db"), func(o *obj) {
				o.JMES = []jm{{Expr: "username", Alias: "db/user", Path: "db_user", Mode: 0o644}}
			})},
		},
		"request permission 420 is the default mode 0644": {
			mutate:  objs("- objectName: prod/db", "  objectType: secretsmanager", "  jmesPath:", "    - path: username", "      objectAlias: user"),
			optsFor: func(t *testing.T) spc.Options { return spc.Options{DefaultMode: mustPermission(t, "420")} },
			want: []obj{edit(sm("prod/db", "prod_db"), func(o *obj) {
				o.JMES = []jm{{Expr: "username", Alias: "user", Path: "user", Mode: 0o644}}
			})},
		},
		"request permission 416 makes objects and jmesPath files 0640": {
			mutate:  objs("- objectName: prod/db", "  objectType: secretsmanager", "  jmesPath:", "    - path: username", "      objectAlias: user"),
			optsFor: func(t *testing.T) spc.Options { return spc.Options{DefaultMode: mustPermission(t, "416")} },
			want: []obj{edit(sm("prod/db", "prod_db"), func(o *obj) {
				o.Mode = 0o640
				o.JMES = []jm{{Expr: "username", Alias: "user", Path: "user", Mode: 0o640}}
			})},
		},
		"filePermission wins over the request permission": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", `  filePermission: "0400"`),
			opts:   spc.Options{DefaultMode: 0o640},
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Mode = 0o400 })},
		},
		"failoverRegion without failoverObject reads the same name there": {
			mutate: with("failoverRegion", "us-west-2"),
			want:   []obj{edit(sm("prod/db", "prod_db"), func(o *obj) { o.Failover = &spc.Target{Name: "prod/db"} })},
			check: func(t *testing.T, c *spc.Config) {
				if c.FailoverRegion != "us-west-2" {
					t.Errorf("FailoverRegion = %q", c.FailoverRegion)
				}
			},
		},
		"failoverRegion without failoverObject keeps version and label": {
			mutate: all(with("failoverRegion", "us-west-2"),
				objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectVersion: "+uuid1, "  objectVersionLabel: AWSCURRENT")),
			want: []obj{edit(sm("prod/db", "prod_db"), func(o *obj) {
				o.Version, o.Label = uuid1, "AWSCURRENT"
				o.Failover = &spc.Target{Name: "prod/db", Version: uuid1, VersionLabel: "AWSCURRENT"}
			})},
		},
		"failoverRegion without failoverObject moves an ARN to the failover region": {
			mutate: all(with("failoverRegion", "us-west-2"), objs("- objectName: "+smARN)),
			want: []obj{edit(sm(smARN, strings.ReplaceAll(smARN, "/", "_")), func(o *obj) {
				o.Failover = &spc.Target{Name: smARNWest2}
			})},
		},
		"failoverRegion without failoverObject moves an ssm ARN too": {
			mutate: all(with("failoverRegion", "us-east-2"), objs("- objectName: "+ssmARN, "  objectAlias: x")),
			want: []obj{edit(ssm(ssmARN, "x"), func(o *obj) {
				o.Alias = "x"
				o.Failover = &spc.Target{Name: ssmARNE2}
			})},
		},
		"failoverObject by ARN (the ASCP failover example)": {
			mutate: all(with("failoverRegion", "us-east-2"),
				objs("- objectName: "+smARN, "  objectAlias: MySecret", "  failoverObject:", "    objectName: "+smARNEast2)),
			want: []obj{edit(sm(smARN, "MySecret"), func(o *obj) {
				o.Alias = "MySecret"
				o.Failover = &spc.Target{Name: smARNEast2}
			})},
		},
		"failoverObject by name with matching versions": {
			mutate: all(with("failoverRegion", "us-west-2"),
				objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: db", "  objectVersion: "+uuid1,
					"  failoverObject:", "    objectName: prod/db-replica", "    objectVersion: "+uuid1, "    objectVersionLabel: AWSCURRENT")),
			want: []obj{edit(sm("prod/db", "db"), func(o *obj) {
				o.Alias, o.Version = "db", uuid1
				o.Failover = &spc.Target{Name: "prod/db-replica", Version: uuid1, VersionLabel: "AWSCURRENT"}
			})},
		},
		"failoverObject keys in any case": {
			mutate: all(with("failoverRegion", "us-west-2"),
				objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: db",
					"  FailoverObject:", "    OBJECTNAME: prod/db-replica")),
			want: []obj{edit(sm("prod/db", "db"), func(o *obj) {
				o.Alias = "db"
				o.Failover = &spc.Target{Name: "prod/db-replica"}
			})},
		},
		"usePodIdentity true": {
			mutate: with("usePodIdentity", "true"),
			check: func(t *testing.T, c *spc.Config) {
				if !c.UsePodIdentity {
					t.Error("UsePodIdentity = false, want true")
				}
			},
		},
		"usePodIdentity True with spaces": {
			mutate: with("usePodIdentity", " True "),
			check: func(t *testing.T, c *spc.Config) {
				if !c.UsePodIdentity {
					t.Error("UsePodIdentity = false, want true")
				}
			},
		},
		"usePodIdentity false": {
			mutate: with("usePodIdentity", "false"),
			check: func(t *testing.T, c *spc.Config) {
				if c.UsePodIdentity {
					t.Error("UsePodIdentity = true, want false")
				}
			},
		},
		"usePodIdentity empty means IRSA": {
			mutate: with("usePodIdentity", ""),
			check: func(t *testing.T, c *spc.Config) {
				if c.UsePodIdentity {
					t.Error("UsePodIdentity = true, want false")
				}
			},
		},
		"preferredAddressType ipv4":           {mutate: with("preferredAddressType", "ipv4"), check: wantAddressType("ipv4")},
		"preferredAddressType IPv6 any case":  {mutate: with("preferredAddressType", "IPv6"), check: wantAddressType("ipv6")},
		"preferredAddressType auto":           {mutate: with("preferredAddressType", "auto"), check: wantAddressType("auto")},
		"preferredAddressType empty is auto":  {mutate: with("preferredAddressType", ""), check: wantAddressType("auto")},
		"preferredAddressType absent is auto": {check: wantAddressType("auto")},
		"region from Options.DefaultRegion": {
			mutate: without("region"),
			opts:   spc.Options{DefaultRegion: "eu-west-1", RequireRegion: true},
			check:  wantRegion("eu-west-1"),
		},
		"region parameter wins over Options.DefaultRegion": {
			opts:  spc.Options{DefaultRegion: "eu-west-1"},
			check: wantRegion("us-east-1"),
		},
		"region may be empty without RequireRegion": {
			mutate: without("region"),
			check:  wantRegion(""),
		},
		"region with surrounding spaces is trimmed": {
			mutate: with("region", " us-east-1 "),
			check:  wantRegion("us-east-1"),
		},
		"keys of an object match in any case": {
			mutate: objs("- ObjectName: prod/db", "  OBJECTTYPE: secretsmanager", "  objectalias: db", "  ObjectVersionLabel: AWSCURRENT"),
			want: []obj{edit(sm("prod/db", "db"), func(o *obj) {
				o.Alias, o.Label = "db", "AWSCURRENT"
			})},
		},
		"assumeRoleArn and assumeRoleExternalId": {
			mutate: with("assumeRoleArn", roleARN, "assumeRoleExternalId", "tenant-42_x@example.com"),
			check: func(t *testing.T, c *spc.Config) {
				if c.AssumeRoleARN != roleARN || c.AssumeRoleExternalID != "tenant-42_x@example.com" {
					t.Errorf("AssumeRoleARN = %q, AssumeRoleExternalID = %q", c.AssumeRoleARN, c.AssumeRoleExternalID)
				}
			},
		},
		"assumeRoleArn with a path, without external id": {
			mutate: with("assumeRoleArn", "arn:aws:iam::123456789012:role/team/app-reader"),
			check: func(t *testing.T, c *spc.Config) {
				if c.AssumeRoleARN != "arn:aws:iam::123456789012:role/team/app-reader" || c.AssumeRoleExternalID != "" {
					t.Errorf("AssumeRoleARN = %q, AssumeRoleExternalID = %q", c.AssumeRoleARN, c.AssumeRoleExternalID)
				}
			},
		},
		"unrelated volumeAttributes are ignored": {
			mutate: with("foo", "bar", "mountPath", "/mnt/secrets", "team", "payments", "csi.storage.k8s.io/whatever", "x"),
			want:   []obj{sm("prod/db", "prod_db")},
		},
		"objects as a JSON flow list": {
			mutate: with("objects", `[{"objectName": "prod/db", "objectType": "secretsmanager"}, {"objectName": "/app/x", "objectType": "ssmparameter"}]`),
			want:   []obj{sm("prod/db", "prod_db"), ssm("/app/x", "_app_x")},
		},
		"same secret twice under different aliases": {
			mutate: objs(
				"- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: current",
				"- objectName: prod/db", "  objectType: secretsmanager", "  objectAlias: previous", "  objectVersionLabel: AWSPREVIOUS",
			),
			want: []obj{
				edit(sm("prod/db", "current"), func(o *obj) { o.Alias = "current" }),
				edit(sm("prod/db", "previous"), func(o *obj) { o.Alias, o.Label = "previous", "AWSPREVIOUS" }),
			},
		},
		"sibling files in one directory with pathTranslation False": {
			mutate: all(with("pathTranslation", "False"), objs(
				"- objectName: /app/a", "  objectType: ssmparameter",
				"- objectName: /app/b", "  objectType: ssmparameter",
			)),
			want: []obj{ssm("/app/a", "app/a"), ssm("/app/b", "app/b")},
		},
		"secret name with every allowed punctuation character": {
			mutate: objs("- objectName: a/b_c+d=e.f@g-h", "  objectType: secretsmanager"),
			want:   []obj{sm("a/b_c+d=e.f@g-h", "a_b_c+d=e.f@g-h")},
		},
		"MaxObjects at the limit": {
			mutate: objs("- objectName: a", "  objectType: secretsmanager", "- objectName: b", "  objectType: secretsmanager"),
			opts:   spc.Options{MaxObjects: 2},
			want:   []obj{sm("a", "a"), sm("b", "b")},
		},
		"typical ASCP example manifest": {
			// The objects block of the AWS provider's README example, with
			// the quoting and indentation people copy from it.
			mutate: all(with("region", "us-east-1", "usePodIdentity", "false"), objs(
				`- objectName: "MySecret"`,
				`  objectType: "secretsmanager"`,
				`  objectAlias: "secret-alias"`,
				`- objectName: "arn:aws:secretsmanager:us-east-1:123456789012:secret:MySecret2-d4e5f6"`,
				`  jmesPath:`,
				`      - path: "username"`,
				`        objectAlias: "dbusername"`,
				`      - path: "password"`,
				`        objectAlias: "dbpassword"`,
				`- objectName: "MyParameter"`,
				`  objectType: "ssmparameter"`,
				`- objectName: "/prod/app/config"`,
				`  objectType: "ssmparameter"`,
				`  objectVersionLabel: "prod"`,
			)),
			want: []obj{
				edit(sm("MySecret", "secret-alias"), func(o *obj) { o.Alias = "secret-alias" }),
				edit(sm("arn:aws:secretsmanager:us-east-1:123456789012:secret:MySecret2-d4e5f6",
					"arn:aws:secretsmanager:us-east-1:123456789012:secret:MySecret2-d4e5f6"), func(o *obj) {
					o.JMES = []jm{
						{Expr: "username", Alias: "dbusername", Path: "dbusername", Mode: 0o644},
						{Expr: "password", Alias: "dbpassword", Path: "dbpassword", Mode: 0o644},
					}
				}),
				ssm("MyParameter", "MyParameter"),
				edit(ssm("/prod/app/config", "_prod_app_config"), func(o *obj) { o.Label = "prod" }),
			},
			check: func(t *testing.T, c *spc.Config) {
				if c.FileCount() != 6 {
					t.Errorf("FileCount() = %d, want 6", c.FileCount())
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			attrs := attrsFor(tc.mutate)
			before := maps.Clone(attrs)
			opts := tc.opts
			if tc.optsFor != nil {
				opts = tc.optsFor(t)
			}
			cfg, err := spc.Parse(attrs, opts)
			if err != nil {
				t.Fatalf("Parse: unexpected error: %v", err)
			}
			if !maps.Equal(attrs, before) {
				t.Errorf("Parse modified its attributes")
			}
			if tc.want != nil {
				if got := summarize(t, cfg.Objects); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("objects:\n got  %s\n want %s", show(got), show(tc.want))
				}
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func show(os []obj) string {
	var b strings.Builder
	for _, o := range os {
		fmt.Fprintf(&b, "\n    %+v", o)
		if o.Failover != nil {
			fmt.Fprintf(&b, " failover=%+v", *o.Failover)
		}
	}
	return b.String()
}

func wantAddressType(want string) func(*testing.T, *spc.Config) {
	return func(t *testing.T, c *spc.Config) {
		t.Helper()
		if c.PreferredAddressType != want {
			t.Errorf("PreferredAddressType = %q, want %q", c.PreferredAddressType, want)
		}
	}
}

func wantRegion(want string) func(*testing.T, *spc.Config) {
	return func(t *testing.T, c *spc.Config) {
		t.Helper()
		if c.Region != want {
			t.Errorf("Region = %q, want %q", c.Region, want)
		}
	}
}

// problem is an expected Problem: Where and Field exactly, and substrings
// of Message.
type problem struct {
	where, field string
	contains     []string
}

func p(where, field string, contains ...string) problem {
	return problem{where: where, field: field, contains: contains}
}

type invalidCase struct {
	mutate mutation
	opts   spc.Options
	want   []problem
}

// smObj is the default object with extra lines.
func smObj(extra ...string) mutation {
	return objs(append([]string{"- objectName: prod/db", "  objectType: secretsmanager"}, extra...)...)
}

func invalidCases() map[string]invalidCase {
	fo := o0 + ".failoverObject"
	j0 := o0 + ".jmesPath[0]"
	arnWhere := "objects[0] (" + smARN + ")"
	tests := map[string]invalidCase{
		// The objects parameter as a whole.
		"objects missing": {
			mutate: without("objects"),
			want:   []problem{p("parameters", "objects", "is missing or empty", "objectName: prod/db")},
		},
		"objects blank": {
			mutate: with("objects", " \n  \n"),
			want:   []problem{p("parameters", "objects", "is missing or empty")},
		},
		"objects malformed YAML": {
			mutate: objs("- objectName: [prod/db", "  objectType: secretsmanager"),
			want:   []problem{p("parameters", "objects", "is not valid YAML")},
		},
		"objects indented with a tab": {
			mutate: objs("- objectName: prod/db", "\tobjectType: secretsmanager"),
			want:   []problem{p("parameters", "objects", "is not valid YAML")},
		},
		"objects is a mapping, not a list": {
			mutate: objs("objectName: prod/db", "objectType: secretsmanager"),
			want:   []problem{p("parameters", "objects", "must be a YAML list", "found a mapping at line 1")},
		},
		"objects is a plain value": {
			mutate: with("objects", "prod/db"),
			want:   []problem{p("parameters", "objects", "must be a YAML list", "found a plain value at line 1")},
		},
		"objects is an empty list": {
			mutate: with("objects", "[]"),
			want:   []problem{p("parameters", "objects", "is an empty list")},
		},
		"objects holds only a comment": {
			mutate: with("objects", "# nothing yet\n"),
			want:   []problem{p("parameters", "objects", "is empty; list at least one object")},
		},
		"item is not a mapping": {
			mutate: objs("- prod/db"),
			want:   []problem{p("objects[0]", "", "must be a mapping with objectName and objectType", "plain value at line 1")},
		},
		"item is a list": {
			mutate: objs("- [prod/db, secretsmanager]"),
			want:   []problem{p("objects[0]", "", "must be a mapping", "found a list at line 1")},
		},
		"second item is not a mapping": {
			mutate: smObj("- prod/api"),
			want:   []problem{p("objects[1]", "", "must be a mapping", "plain value at line 3")},
		},

		// Keys of an entry.
		"unknown object key objectNmae suggests objectName": {
			mutate: objs("- objectNmae: prod/db", "  objectType: secretsmanager"),
			want: []problem{
				p("objects[0]", "objectNmae", `unknown key; did you mean "objectName"?`),
				p("objects[0]", "objectName", "is required"),
			},
		},
		"unknown object key on a named object names the object": {
			mutate: smObj("  objectAlais: db"),
			want:   []problem{p(o0, "objectAlais", `did you mean "objectAlias"?`, "valid keys: objectName, objectType")},
		},
		"unknown object key with no near match lists the valid keys": {
			mutate: smObj("  color: blue"),
			want:   []problem{p(o0, "color", "unknown key; valid keys are objectName, objectType, objectAlias")},
		},
		"unknown jmesPath key": {
			mutate: smObj("  jmesPath:", "    - path: username", "      objetAlias: user"),
			want: []problem{
				p(j0, "objetAlias", `did you mean "objectAlias"?`, "valid keys: path, objectAlias, filePermission"),
				p(j0, "objectAlias", "is required"),
			},
		},
		"unknown failoverObject key": {
			mutate: all(with("failoverRegion", "us-west-2"),
				smObj("  objectAlias: db", "  failoverObject:", "    objectName: prod/db", "    objectVerison: 3")),
			want: []problem{p(fo, "objectVerison", `did you mean "objectVersion"?`)},
		},
		"duplicate key": {
			mutate: smObj("  objectType: ssmparameter"),
			want:   []problem{p(o0, "objectType", "is set twice (line 3)")},
		},
		"duplicate key in another case": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectname: prod/api"),
			want:   []problem{p(o0, "objectName", "is set twice (line 3)")},
		},
		"duplicate jmesPath key": {
			mutate: smObj("  jmesPath:", "    - path: username", "      path: password", "      objectAlias: user"),
			want:   []problem{p(j0, "path", "is set twice (line 5)")},
		},

		// objectName and objectType.
		"missing objectName": {
			mutate: objs("- objectType: secretsmanager"),
			want:   []problem{p("objects[0]", "objectName", "is required")},
		},
		"empty objectName": {
			mutate: objs(`- objectName: ""`, "  objectType: secretsmanager"),
			want:   []problem{p("objects[0]", "objectName", "is required")},
		},
		"objectName is a list": {
			mutate: objs("- objectName: [a, b]", "  objectType: secretsmanager"),
			want: []problem{
				p("objects[0]", "objectName", "must be a single value, found a list at line 1"),
				p("objects[0]", "objectName", "is required"),
			},
		},
		"missing objectType on a plain name": {
			mutate: objs("- objectName: prod/db"),
			want:   []problem{p(o0, "objectType", "is required when objectName is not an ARN", "secretsmanager", "ssmparameter")},
		},
		"objectType ssm suggests ssmparameter": {
			mutate: objs("- objectName: prod/db", "  objectType: ssm"),
			want:   []problem{p(o0, "objectType", `"ssm" is not a valid objectType`, `use "ssmparameter"`)},
		},
		"objectType parameterstore suggests ssmparameter": {
			mutate: objs("- objectName: prod/db", "  objectType: ParameterStore"),
			want:   []problem{p(o0, "objectType", `"ParameterStore" is not a valid objectType`, `use "ssmparameter"`)},
		},
		"objectType unknown": {
			mutate: objs("- objectName: prod/db", "  objectType: secret"),
			want:   []problem{p(o0, "objectType", `"secret" is not a valid objectType`, `use "secretsmanager" or "ssmparameter"`)},
		},
		"ARN service disagrees with objectType": {
			mutate: objs("- objectName: "+smARN, "  objectType: ssmparameter"),
			want:   []problem{p(arnWhere, "objectType", `is "ssmparameter" but objectName is a Secrets Manager ARN`)},
		},
		"ssm ARN with objectType secretsmanager": {
			mutate: objs("- objectName: "+ssmARN, "  objectType: secretsmanager"),
			want:   []problem{p("objects[0] ("+ssmARN+")", "objectType", `is "secretsmanager" but objectName is a Parameter Store ARN`)},
		},
		"ARN region differs from region": {
			mutate: objs("- objectName: " + smARNWest2),
			want: []problem{p("objects[0] ("+smARNWest2+")", "objectName",
				"the ARN is in region us-west-2 but it is read in us-east-1 (region)", "set region to us-west-2")},
		},
		"ARN region differs from Options.DefaultRegion": {
			mutate: all(without("region"), objs("- objectName: "+smARN)),
			opts:   spc.Options{DefaultRegion: "eu-west-1"},
			want:   []problem{p(arnWhere, "objectName", "the ARN is in region us-east-1 but it is read in eu-west-1")},
		},
		"ARN account is not 12 digits": {
			mutate: objs("- objectName: arn:aws:secretsmanager:us-east-1:12345:secret:prod/db"),
			want: []problem{p("objects[0] (arn:aws:secretsmanager:us-east-1:12345:secret:prod/db)", "objectName",
				"is not a valid ARN", `account "12345" is not a 12-digit account id`)},
		},
		"ARN partition is not AWS": {
			mutate: objs("- objectName: arn:gcp:secretsmanager:us-east-1:123456789012:secret:prod/db"),
			want: []problem{p("objects[0] (arn:gcp:secretsmanager:us-east-1:123456789012:secret:prod/db)", "objectName",
				"is not a valid ARN", `partition "gcp"`)},
		},
		"ARN region is not a region code": {
			mutate: objs("- objectName: arn:aws:secretsmanager:useast1:123456789012:secret:prod/db"),
			want: []problem{p("objects[0] (arn:aws:secretsmanager:useast1:123456789012:secret:prod/db)", "objectName",
				"is not a valid ARN", `region "useast1"`)},
		},
		"ARN of another service": {
			mutate: objs("- objectName: arn:aws:s3:us-east-1:123456789012:bucket/x"),
			want:   []problem{p("objects[0] (arn:aws:s3:us-east-1:123456789012:bucket/x)", "objectName", `ARN service "s3" is neither secretsmanager nor ssm`)},
		},
		"secretsmanager ARN resource lacks secret:": {
			mutate: objs("- objectName: arn:aws:secretsmanager:us-east-1:123456789012:prod/db"),
			want: []problem{p("objects[0] (arn:aws:secretsmanager:us-east-1:123456789012:prod/db)", "objectName",
				"resource must be secret:<name>", `got "prod/db"`)},
		},
		"ssm ARN resource lacks parameter/": {
			mutate: objs("- objectName: arn:aws:ssm:us-east-1:123456789012:document/x"),
			want:   []problem{p("objects[0] (arn:aws:ssm:us-east-1:123456789012:document/x)", "objectName", "resource must be parameter/<name>")},
		},
		"ARN with too few fields": {
			mutate: objs("- objectName: arn:aws:secretsmanager:us-east-1"),
			want:   []problem{p("objects[0] (arn:aws:secretsmanager:us-east-1)", "objectName", "is not a valid ARN", "arn:<partition>:<service>:<region>:<account>:<resource>")},
		},
		"ARN with an empty resource": {
			mutate: objs(`- objectName: "arn:aws:secretsmanager:us-east-1:123456789012:"`),
			want:   []problem{p("objects[0] (arn:aws:secretsmanager:us-east-1:123456789012:)", "objectName", "ARN has no resource part")},
		},
		"secret name with a space": {
			mutate: objs(`- objectName: "prod db"`, "  objectType: secretsmanager"),
			want:   []problem{p("objects[0] (prod db)", "objectName", `"prod db" is not a valid Secrets Manager secret name`)},
		},
		"secret name longer than 512 characters": {
			mutate: objs("- objectName: "+strings.Repeat("s", 513), "  objectType: secretsmanager", "  objectAlias: db"),
			want:   []problem{p("objects[0] (\""+strings.Repeat("s", 100)+"\"...)", "objectName", "is not a valid Secrets Manager secret name")},
		},
		"parameter name with an invalid character": {
			mutate: objs("- objectName: /app/x*", "  objectType: ssmparameter"),
			want:   []problem{p("objects[0] (/app/x*)", "objectName", `"/app/x*" is not a valid Parameter Store name`)},
		},
		"parameter name longer than 2048 characters": {
			mutate: objs("- objectName: /"+strings.Repeat("p", 2048), "  objectType: ssmparameter", "  objectAlias: p"),
			want:   []problem{p("objects[0] (\"/"+strings.Repeat("p", 99)+"\"...)", "objectName", "is not a valid Parameter Store name")},
		},
		"parameter name ending with a slash": {
			mutate: objs("- objectName: /app/", "  objectType: ssmparameter"),
			want:   []problem{p("objects[0] (/app/)", "objectName", "ends with /")},
		},
		"parameter name with more than 15 levels": {
			mutate: objs("- objectName: "+strings.Repeat("/l", 16), "  objectType: ssmparameter"),
			want:   []problem{p("objects["+"0] ("+strings.Repeat("/l", 16)+")", "objectName", "more than 15 path levels")},
		},

		// Versions and labels.
		"ssm version not a number": {
			mutate: objs("- objectName: /app/x", "  objectType: ssmparameter", "  objectVersion: latest"),
			want:   []problem{p("objects[0] (/app/x)", "objectVersion", `"latest" is not a Parameter Store version`)},
		},
		"ssm version zero": {
			mutate: objs("- objectName: /app/x", "  objectType: ssmparameter", `  objectVersion: "0"`),
			want:   []problem{p("objects[0] (/app/x)", "objectVersion", `"0" is not a Parameter Store version`)},
		},
		"secretsmanager VersionId too short": {
			mutate: smObj("  objectVersion: v1"),
			want:   []problem{p(o0, "objectVersion", `"v1" is not a Secrets Manager VersionId`)},
		},
		"secretsmanager staging label given as objectVersion": {
			mutate: smObj("  objectVersion: AWSPREVIOUS"),
			want:   []problem{p(o0, "objectVersion", `"AWSPREVIOUS" is not a Secrets Manager VersionId`, "use objectVersionLabel")},
		},
		"ssm version and label together": {
			mutate: objs("- objectName: /app/x", "  objectType: ssmparameter", "  objectVersion: 3", "  objectVersionLabel: stable"),
			want:   []problem{p("objects[0] (/app/x)", "objectVersionLabel", "not both")},
		},
		"label with a space": {
			mutate: smObj(`  objectVersionLabel: "AWS CURRENT"`),
			want:   []problem{p(o0, "objectVersionLabel", `"AWS CURRENT" is not a valid label`)},
		},

		// File names.
		"alias climbing out with ../ (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), smObj("  objectAlias: ../etc/passwd")),
			want:   []problem{p(o0, "objectAlias", `"../etc/passwd" has a ".." element`)},
		},
		"absolute alias climbing out (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), smObj("  objectAlias: /../etc/passwd")),
			want:   []problem{p(o0, "objectAlias", `"/../etc/passwd" becomes the file path "../etc/passwd", which has a ".." element`)},
		},
		"alias climbing out in the middle (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), smObj("  objectAlias: a/../../etc")),
			want:   []problem{p(o0, "objectAlias", `"a/../../etc" has a ".." element`)},
		},
		"alias with ../ under the default translation": {
			mutate: smObj("  objectAlias: ../x"),
			want:   []problem{p(o0, "objectAlias", `"../x" becomes the file path ".._x", which has an element starting with ".."`)},
		},
		"alias starting with ..": {
			mutate: smObj("  objectAlias: ..data"),
			want:   []problem{p(o0, "objectAlias", `"..data" has an element starting with ".."`, "driver reserves")},
		},
		"alias is a dot": {
			mutate: smObj(`  objectAlias: "."`),
			want:   []problem{p(o0, "objectAlias", `"." names the mount itself`)},
		},
		"alias with an empty element (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), smObj("  objectAlias: a//b")),
			want:   []problem{p(o0, "objectAlias", `"a//b" is not canonical`, `write it as "a/b"`)},
		},
		"alias with a trailing slash (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), smObj("  objectAlias: db/")),
			want:   []problem{p(o0, "objectAlias", `"db/" is not canonical`)},
		},
		"alias with a control character": {
			mutate: smObj(`  objectAlias: "db\tx"`),
			want:   []problem{p(o0, "objectAlias", "contains a control character")},
		},
		"alias element longer than 255 bytes": {
			mutate: smObj("  objectAlias: " + strings.Repeat("a", 256)),
			want:   []problem{p(o0, "objectAlias", "has an element of 256 bytes")},
		},
		"parameter name climbing out (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), objs("- objectName: /app/../../x", "  objectType: ssmparameter")),
			want:   []problem{p("objects[0] (/app/../../x)", "objectName", `"/app/../../x" becomes the file path "app/../../x", which has a ".." element`, "choose an objectAlias")},
		},
		"parameter name with an empty level (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), objs("- objectName: /app//x", "  objectType: ssmparameter")),
			want:   []problem{p("objects[0] (/app//x)", "objectName", `"/app//x" becomes the file path "app//x", which is not canonical`)},
		},
		"jmesPath alias climbing out (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), smObj("  jmesPath:", "    - path: username", "      objectAlias: ../user")),
			want:   []problem{p(j0, "objectAlias", `"../user" has a ".." element`)},
		},

		// Two files at one path.
		"same object twice without aliases": {
			mutate: smObj("- objectName: prod/db", "  objectType: secretsmanager"),
			want:   []problem{p("objects[1] (prod/db)", "objectAlias", `"prod/db" becomes the file "prod_db", which objects[0] (prod/db) also writes`, "different objectAlias")},
		},
		"two names translating to the same file": {
			mutate: smObj("- objectName: prod_db", "  objectType: secretsmanager"),
			want:   []problem{p("objects[1] (prod_db)", "objectAlias", `writes file "prod_db", which objects[0] (prod/db) also writes`)},
		},
		"alias equal to another object's file": {
			mutate: smObj("- objectName: prod/api", "  objectType: secretsmanager", "  objectAlias: prod_db"),
			want:   []problem{p("objects[1] (prod/api)", "objectAlias", `writes file "prod_db", which objects[0] (prod/db) also writes`)},
		},
		"alias translating to another object's file": {
			mutate: smObj("- objectName: prod/api", "  objectType: secretsmanager", "  objectAlias: prod/db"),
			want:   []problem{p("objects[1] (prod/api)", "objectAlias", `"prod/db" becomes the file "prod_db", which objects[0] (prod/db) also writes`)},
		},
		"jmesPath alias equal to another object's alias": {
			mutate: smObj("  objectAlias: creds",
				"- objectName: prod/api", "  objectType: secretsmanager", "  jmesPath:", "    - path: key", "      objectAlias: creds"),
			want: []problem{p("objects[1] (prod/api).jmesPath[0]", "objectAlias", `writes file "creds", which objects[0] (prod/db) also writes`)},
		},
		"jmesPath alias equal to its own object's file": {
			mutate: smObj("  jmesPath:", "    - path: username", "      objectAlias: prod_db"),
			want:   []problem{p(j0, "objectAlias", `writes file "prod_db", which objects[0] (prod/db) also writes`)},
		},
		"two jmesPath entries with one alias": {
			mutate: smObj("  jmesPath:", "    - path: username", "      objectAlias: user", "    - path: login", "      objectAlias: user"),
			want:   []problem{p(o0+".jmesPath[1]", "objectAlias", `writes file "user", which objects[0] (prod/db).jmesPath[0] also writes`)},
		},
		"file that is also a directory of another (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), objs(
				"- objectName: /a", "  objectType: ssmparameter",
				"- objectName: /a/b", "  objectType: ssmparameter")),
			want: []problem{p("objects[1] (/a/b)", "objectAlias", `writes "a/b" inside "a", which objects[0] (/a) writes as a file`)},
		},
		"directory of another, nested file listed first (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), objs(
				"- objectName: /a/b/c", "  objectType: ssmparameter",
				"- objectName: /a", "  objectType: ssmparameter")),
			want: []problem{p("objects[0] (/a/b/c)", "objectAlias", `writes "a/b/c" inside "a", which objects[1] (/a) writes as a file`)},
		},
		"jmesPath alias inside its object's file (pathTranslation False)": {
			mutate: all(with("pathTranslation", "False"), objs(
				"- objectName: /db", "  objectType: ssmparameter", "  jmesPath:", "    - path: user", "      objectAlias: db/user")),
			want: []problem{p("objects[0] (/db).jmesPath[0]", "objectAlias", `writes "db/user" inside "db", which objects[0] (/db) writes as a file`)},
		},

		// jmesPath entries.
		"jmesPath without path": {
			mutate: smObj("  jmesPath:", "    - objectAlias: user"),
			want:   []problem{p(j0, "path", "is required")},
		},
		"jmesPath without objectAlias": {
			mutate: smObj("  jmesPath:", "    - path: username"),
			want:   []problem{p(j0, "objectAlias", "is required")},
		},
		"jmesPath with an invalid expression": {
			mutate: smObj("  jmesPath:", `    - path: "user["`, "      objectAlias: user"),
			want:   []problem{p(j0, "path", `"user[" is not a valid JMESPath expression`)},
		},
		"jmesPath is not a list": {
			mutate: smObj("  jmesPath: username"),
			want:   []problem{p(o0, "jmesPath", "must be a list of {path, objectAlias} entries, found a plain value at line 3")},
		},
		"jmesPath item is not a mapping": {
			mutate: smObj("  jmesPath:", "    - username"),
			want:   []problem{p(j0, "", "must be a mapping with path and objectAlias", "plain value at line 4")},
		},
		"jmesPath filePermission invalid": {
			mutate: smObj("  jmesPath:", "    - path: username", "      objectAlias: user", `      filePermission: "0999"`),
			want:   []problem{p(j0, "filePermission", `"0999" is not a file permission`)},
		},

		// Failover.
		"failoverObject without failoverRegion": {
			mutate: smObj("  objectAlias: db", "  failoverObject:", "    objectName: prod/db-replica"),
			want:   []problem{p(o0, "failoverObject", "needs a failoverRegion")},
		},
		"failoverObject without objectAlias": {
			mutate: all(with("failoverRegion", "us-west-2"), smObj("  failoverObject:", "    objectName: prod/db-replica")),
			want:   []problem{p(o0, "objectAlias", "is required with failoverObject")},
		},
		"failoverObject is not a mapping": {
			mutate: all(with("failoverRegion", "us-west-2"), smObj("  objectAlias: db", "  failoverObject: prod/db-replica")),
			want:   []problem{p(o0, "failoverObject", "must be a mapping with objectName", "plain value at line 4")},
		},
		"failoverObject without objectName": {
			mutate: all(with("failoverRegion", "us-west-2"), smObj("  objectAlias: db", "  failoverObject: {}")),
			want:   []problem{p(fo, "objectName", "is required")},
		},
		"failover version differs from primary": {
			mutate: all(with("failoverRegion", "us-west-2"), smObj("  objectAlias: db", "  objectVersion: "+uuid1,
				"  failoverObject:", "    objectName: prod/db-replica", "    objectVersion: "+uuid2)),
			want: []problem{p(fo, "objectVersion", fmt.Sprintf("is %q but the primary objectVersion is %q", uuid2, uuid1))},
		},
		"failover version missing while primary has one": {
			mutate: all(with("failoverRegion", "us-west-2"), smObj("  objectAlias: db", "  objectVersion: "+uuid1,
				"  failoverObject:", "    objectName: prod/db-replica")),
			want: []problem{p(fo, "objectVersion", fmt.Sprintf(`is "" but the primary objectVersion is %q`, uuid1))},
		},
		"failover ARN in the primary region": {
			mutate: all(with("failoverRegion", "us-east-2"), objs("- objectName: "+smARN, "  objectAlias: db",
				"  failoverObject:", "    objectName: "+smARN)),
			want: []problem{p(arnWhere+".failoverObject", "objectName",
				"the ARN is in region us-east-1 but it is read in us-east-2 (failoverRegion)", "set failoverRegion to us-east-1")},
		},
		"failover ARN of another service": {
			mutate: all(with("failoverRegion", "us-east-2"), smObj("  objectAlias: db", "  failoverObject:", "    objectName: "+ssmARNE2)),
			want:   []problem{p(fo, "objectName", "is a Parameter Store ARN but the object is Secrets Manager")},
		},
		"failover name invalid for the object's service": {
			mutate: all(with("failoverRegion", "us-west-2"), smObj("  objectAlias: db", "  failoverObject:", `    objectName: "prod db"`)),
			want:   []problem{p(fo, "objectName", `"prod db" is not a valid Secrets Manager secret name`)},
		},
		"failover ssm version and label together": {
			mutate: all(with("failoverRegion", "us-west-2"), objs("- objectName: /app/x", "  objectType: ssmparameter", "  objectAlias: x",
				"  objectVersion: 3", "  failoverObject:", "    objectName: /app/x", "    objectVersion: 3", "    objectVersionLabel: stable")),
			want: []problem{p("objects[0] (/app/x).failoverObject", "objectVersionLabel", "not both")},
		},
		"failoverRegion equal to region": {
			mutate: with("failoverRegion", "us-east-1"),
			want:   []problem{p("parameters", "failoverRegion", `"us-east-1" is also the primary region`)},
		},
		"failoverRegion equal to Options.DefaultRegion": {
			mutate: all(without("region"), with("failoverRegion", "eu-west-1")),
			opts:   spc.Options{DefaultRegion: "eu-west-1"},
			want:   []problem{p("parameters", "failoverRegion", `"eu-west-1" is also the primary region`)},
		},
		"failoverRegion not a region code": {
			mutate: with("failoverRegion", "us-west"),
			want:   []problem{p("parameters", "failoverRegion", `"us-west" is not an AWS region code`)},
		},

		// Top-level parameters.
		"usePodIdentity yes": {
			mutate: with("usePodIdentity", "yes"),
			want:   []problem{p("parameters", "usePodIdentity", `"yes" is not a boolean`)},
		},
		"preferredAddressType ipv5": {
			mutate: with("preferredAddressType", "ipv5"),
			want:   []problem{p("parameters", "preferredAddressType", `"ipv5" is not one of ipv4, ipv6, auto`)},
		},
		"pathTranslation of two characters": {
			mutate: with("pathTranslation", "ab"),
			want:   []problem{p("parameters", "pathTranslation", `"ab" must be a single character`)},
		},
		"pathTranslation slash": {
			mutate: with("pathTranslation", "/"),
			want:   []problem{p("parameters", "pathTranslation", `"/" cannot replace "/"`)},
		},
		"top-level typo regoin": {
			mutate: with("regoin", "us-east-1"),
			want:   []problem{p("parameters", "regoin", `unknown parameter; did you mean "region"?`)},
		},
		"top-level key in the wrong case": {
			mutate: with("UsePodIdentity", "true"),
			want:   []problem{p("parameters", "UsePodIdentity", `did you mean "usePodIdentity"?`)},
		},
		"top-level typo objets": {
			mutate: with("objets", "- objectName: x"),
			want:   []problem{p("parameters", "objets", `did you mean "objects"?`)},
		},
		"RequireRegion without any region": {
			mutate: without("region"),
			opts:   spc.Options{RequireRegion: true},
			want:   []problem{p("parameters", "region", "no region", "AWS_REGION")},
		},
		"MaxObjects exceeded": {
			mutate: smObj("- objectName: b", "  objectType: secretsmanager", "- objectName: c", "  objectType: secretsmanager"),
			opts:   spc.Options{MaxObjects: 2},
			want:   []problem{p("parameters", "objects", "lists 3 objects", "over the limit of 2", "split them")},
		},
		"MaxObjects counts invalid entries too, and stops before reading any": {
			mutate: smObj("- objectName: b", "  objectType: secretsmanager", "- objectName: c", "  objectType: bad"),
			opts:   spc.Options{MaxObjects: 2},
			want:   []problem{p("parameters", "objects", "lists 3 objects", "over the limit of 2")},
		},
		"assumeRoleExternalId without assumeRoleArn": {
			mutate: with("assumeRoleExternalId", "tenant-42"),
			want:   []problem{p("parameters", "assumeRoleExternalId", "assumeRoleArn is not")},
		},
		"assumeRoleExternalId with a space": {
			mutate: with("assumeRoleArn", roleARN, "assumeRoleExternalId", "tenant 42"),
			want:   []problem{p("parameters", "assumeRoleExternalId", "must be 2-1224 characters")},
		},
		"assumeRoleExternalId of one character": {
			mutate: with("assumeRoleArn", roleARN, "assumeRoleExternalId", "x"),
			want:   []problem{p("parameters", "assumeRoleExternalId", "must be 2-1224 characters")},
		},
		"assumeRoleExternalId longer than 1224 characters": {
			mutate: with("assumeRoleArn", roleARN, "assumeRoleExternalId", strings.Repeat("x", 1225)),
			want:   []problem{p("parameters", "assumeRoleExternalId", "must be 2-1224 characters")},
		},

		// Several problems at once.
		"three independent problems are all reported": {
			mutate: all(with("region", "nowhere"), objs(
				"- objectName: prod/db", "  objectType: ssm",
				"- objectName: prod/api", "  objectType: secretsmanager", `  filePermission: "999"`)),
			want: []problem{
				p("parameters", "region", `"nowhere" is not an AWS region code`),
				p(o0, "objectType", `"ssm" is not a valid objectType`),
				p("objects[1] (prod/api)", "filePermission", `"999" is not a file permission`),
			},
		},
		"problems of one entry are all reported": {
			mutate: objs("- objectName: prod/db", "  objectType: secretsmanager", "  objectVersion: v1",
				`  filePermission: "12"`, "  objectAlias: ../x", "  jmesPath:", "    - path: a["),
			want: []problem{
				p(o0, "objectVersion", `"v1" is not a Secrets Manager VersionId`),
				p(o0, "filePermission", `"12" is not a file permission`),
				p(o0, "objectAlias", "has an element starting with"),
				p(j0, "path", `"a[" is not a valid JMESPath expression`),
				p(j0, "objectAlias", "is required"),
			},
		},
		"problems of parameters and objects together": {
			mutate: all(with("usePodIdentity", "yes", "preferredAddressType", "ipv5", "pathTranslation", "ab",
				"assumeRoleArn", "role", "failoverRegion", "west", "regoin", "x"),
				objs("- objectName: prod/db", "- objectType: secretsmanager")),
			want: []problem{
				p("parameters", "regoin", `did you mean "region"?`),
				p("parameters", "failoverRegion", `"west" is not an AWS region code`),
				p("parameters", "pathTranslation", `"ab" must be a single character`),
				p("parameters", "usePodIdentity", `"yes" is not a boolean`),
				p("parameters", "preferredAddressType", `"ipv5" is not one of`),
				p("parameters", "assumeRoleArn", `"role" is not an IAM role ARN`),
				p(o0, "objectType", "is required"),
				p("objects[1]", "objectName", "is required"),
			},
		},
	}

	for _, v := range []string{"999", "0x1", "07777", "12", "1777", "-644", "rw-r--r--", "0o640", "6 4 0"} {
		tests["filePermission "+v+" rejected"] = invalidCase{
			mutate: smObj(fmt.Sprintf("  filePermission: %q", v)),
			want:   []problem{p(o0, "filePermission", fmt.Sprintf("%q is not a file permission", v), `"0640"`)},
		}
	}
	for _, v := range []string{"US-EAST-1", "us-east", "useast1", "us-east-1a", "us_east_1", "us-east-100", "aws-global", "global"} {
		tests["region "+v+" rejected"] = invalidCase{
			mutate: with("region", v),
			want:   []problem{p("parameters", "region", fmt.Sprintf("%q is not an AWS region code", v))},
		}
	}
	for name, v := range map[string]string{
		"short account":     "arn:aws:iam::12345:role/x",
		"user, not role":    "arn:aws:iam::123456789012:user/x",
		"bare name":         "app-reader",
		"with a region":     "arn:aws:iam:us-east-1:123456789012:role/x",
		"empty role name":   "arn:aws:iam::123456789012:role/",
		"not iam":           "arn:aws:sts::123456789012:role/x",
		"non-AWS partition": "arn:gcp:iam::123456789012:role/x",
	} {
		tests["assumeRoleArn "+name+" rejected"] = invalidCase{
			mutate: with("assumeRoleArn", v),
			want:   []problem{p("parameters", "assumeRoleArn", fmt.Sprintf("%q is not an IAM role ARN", v))},
		}
	}
	return tests
}

func TestParseInvalid(t *testing.T) {
	for name, tc := range invalidCases() {
		t.Run(name, func(t *testing.T) {
			cfg, err := spc.Parse(attrsFor(tc.mutate), tc.opts)
			if err == nil {
				t.Fatalf("Parse succeeded, want %d problems; objects: %s", len(tc.want), show(summarize(t, cfg.Objects)))
			}
			if cfg != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			var ve *spc.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, want *spc.ValidationError: %v", err, err)
			}
			checkProblems(t, ve.Problems, tc.want)

			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("Error() spans several lines: %q", msg)
			}
			if !strings.HasPrefix(msg, `invalid SecretProviderClass "app-secrets": `) {
				t.Errorf("Error() does not start by naming the SecretProviderClass: %q", msg)
			}
			for _, pr := range ve.Problems {
				if !strings.Contains(msg, pr.String()) {
					t.Errorf("Error() lacks problem %q: %q", pr.String(), msg)
				}
			}
			if len(ve.Problems) > 1 && !strings.Contains(msg, fmt.Sprintf(": %d problems: (1) ", len(ve.Problems))) {
				t.Errorf("Error() does not count its problems: %q", msg)
			}

			// Determinism: the same input gives the same text.
			_, again := spc.Parse(attrsFor(tc.mutate), tc.opts)
			if again == nil || again.Error() != msg {
				t.Errorf("second Parse differs:\n first  %v\n second %v", err, again)
			}
		})
	}
}

func checkProblems(t *testing.T, got []yamlcheck.Problem, want []problem) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:%s", len(got), len(want), listProblems(got))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		g, w := got[i], want[i]
		if g.Where != w.where || g.Field != w.field {
			t.Errorf("problem %d is at (%q, %q), want (%q, %q): %s", i, g.Where, g.Field, w.where, w.field, g.Message)
		}
		for _, s := range w.contains {
			if !strings.Contains(g.Message, s) {
				t.Errorf("problem %d message %q lacks %q", i, g.Message, s)
			}
		}
		if g.Message == "" {
			t.Errorf("problem %d has no message", i)
		}
	}
}

func listProblems(ps []yamlcheck.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n    %q %q: %s", p.Where, p.Field, p.Message)
	}
	return b.String()
}

func TestErrorFormat(t *testing.T) {
	t.Run("one problem is one sentence naming the class, object and field", func(t *testing.T) {
		_, err := spc.Parse(attrsFor(objs("- objectName: prod/db", "  objectType: ssm")), spc.Options{})
		want := `invalid SecretProviderClass "app-secrets": objects[0] (prod/db): field "objectType": "ssm" is not a valid objectType; for Parameter Store use "ssmparameter"`
		if err == nil || err.Error() != want {
			t.Errorf("Error() =\n %v\nwant\n %s", err, want)
		}
	})
	t.Run("several problems are numbered on one line", func(t *testing.T) {
		_, err := spc.Parse(attrsFor(all(with("usePodIdentity", "yes"), objs("- objectName: prod/db", "  objectType: ssm"))), spc.Options{})
		want := `invalid SecretProviderClass "app-secrets": 2 problems: ` +
			`(1) parameters: field "usePodIdentity": "yes" is not a boolean; use "true" (EKS Pod Identity) or "false" (IRSA, the default); ` +
			`(2) objects[0] (prod/db): field "objectType": "ssm" is not a valid objectType; for Parameter Store use "ssmparameter"`
		if err == nil || err.Error() != want {
			t.Errorf("Error() =\n %v\nwant\n %s", err, want)
		}
	})
	t.Run("without the class name", func(t *testing.T) {
		_, err := spc.Parse(attrsFor(all(without("secretProviderClass"), with("usePodIdentity", "yes"))), spc.Options{})
		if err == nil || !strings.HasPrefix(err.Error(), `invalid SecretProviderClass: parameters: field "usePodIdentity": `) {
			t.Errorf("Error() = %v", err)
		}
	})
	t.Run("a name with a newline stays on one line", func(t *testing.T) {
		_, err := spc.Parse(attrsFor(objs(`- objectName: "prod\ndb"`, "  objectType: secretsmanager")), spc.Options{})
		if err == nil {
			t.Fatal("Parse succeeded")
		}
		if strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("Error() spans several lines: %q", err.Error())
		}
		var ve *spc.ValidationError
		if errors.As(err, &ve) && ve.Problems[0].Where != `objects[0] ("prod\ndb")` {
			t.Errorf("Where = %q", ve.Problems[0].Where)
		}
	})

	tests := map[string]struct {
		err  spc.ValidationError
		want string
	}{
		"empty source defaults to SecretProviderClass": {
			err:  spc.ValidationError{Problems: []yamlcheck.Problem{{Where: "parameters", Field: "region", Message: "bad"}}},
			want: `invalid SecretProviderClass: parameters: field "region": bad`,
		},
		"source from the CLI": {
			err:  spc.ValidationError{Source: "spc.yaml", Problems: []yamlcheck.Problem{{Where: "objects[1]", Message: "must be a mapping"}}},
			want: `invalid spc.yaml: objects[1]: must be a mapping`,
		},
		"problem with neither where nor field": {
			err:  spc.ValidationError{Source: "x", Problems: []yamlcheck.Problem{{Message: "m1"}, {Where: "w", Field: "f", Message: "m2"}}},
			want: `invalid x: 2 problems: (1) m1; (2) w: field "f": m2`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestParseDeterministic parses an input with many problems, several of
// them from map-ordered sources, many times.
func TestParseDeterministic(t *testing.T) {
	attrs := attrsFor(all(
		with("regoin", "x", "failoverRegoin", "y", "usePodIdentiy", "true", "pathTranslaton", "_", "objcts", "z"),
		with("region", "bad", "usePodIdentity", "maybe"),
		objs(
			"- objectName: prod/db", "  objectType: ssm", "  objectAlais: a", "  colour: red",
			"- objectName: prod/db", "  objectType: secretsmanager",
			"- objectName: prod/db", "  objectType: secretsmanager",
			"- objectName: /a", "  objectType: ssmparameter", "  objectAlias: x",
			"- objectName: /b", "  objectType: ssmparameter", "  jmesPath:", "    - path: a", "      objectAlias: x",
		)))
	_, first := spc.Parse(attrs, spc.Options{})
	if first == nil {
		t.Fatal("Parse succeeded")
	}
	for range 50 {
		_, err := spc.Parse(maps.Clone(attrs), spc.Options{})
		if err == nil || err.Error() != first.Error() {
			t.Fatalf("Parse is not deterministic:\n first %v\n now   %v", first, err)
		}
	}
}
