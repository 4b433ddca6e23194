package spc

import (
	"path"
	"strings"
	"testing"
)

// driverAccepts restates the driver's own file path rules
// (pkg/util/fileutil: validatePath and Validate), independently of
// CheckFilePath, so the fuzzer can compare the two.
func driverAccepts(p string) bool {
	if p == "" || path.IsAbs(p) || len(p) > 4096 || path.Clean(p) != p {
		return false
	}
	items := strings.Split(p, "/")
	for _, item := range items {
		if item == ".." || len(item) > 255 {
			return false
		}
	}
	return !(strings.HasPrefix(items[0], "..") && len(items[0]) > 2)
}

// FuzzCheckFilePath: every path coffer accepts, the driver accepts.
func FuzzCheckFilePath(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "/abs", "a//b", "..data", "a/..b", ".", "", "a/", strings.Repeat("x", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if CheckFilePath(p) == nil && !driverAccepts(p) {
			t.Errorf("coffer accepts %q, the driver would not", p)
		}
	})
}

// FuzzParse: whatever the objects YAML, Parse never panics; what it accepts
// yields file paths the driver accepts and no two objects write one path;
// what it refuses it explains on one line.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"- {objectName: prod/db, objectType: secretsmanager}",
		"- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf\n  jmesPath: [{path: a.b, objectAlias: ab}]",
		"- {objectName: /app/p, objectType: ssmparameter, objectVersion: \"3\", objectAlias: \"../x\"}",
		"- {path: /app/prod/, objectAlias: prod, recursive: true}",
		"- {objectAlias: s, filters: [{key: name, values: [app/]}]}",
		"- {objectName: db, objectType: secretsmanager, expandJSON: true, decoding: base64}",
		"- {objectName: a, objectType: secretsmanager, failoverObject: {objectName: b}, objectAlias: a}",
		"[", "- 1", "- [a]", "objects: x",
	}
	for _, s := range seeds {
		f.Add(s, "", "us-west-2")
		f.Add(s, "False", "")
	}
	f.Fuzz(func(t *testing.T, objects, translation, failover string) {
		attrs := map[string]string{"objects": objects, "region": "us-east-1", "pathTranslation": translation, "failoverRegion": failover}
		cfg, err := Parse(attrs, Options{MaxObjects: 50})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		seen := map[string]bool{}
		check := func(p string) {
			if !driverAccepts(p) {
				t.Errorf("accepted a path the driver refuses: %q", p)
			}
			if seen[p] {
				t.Errorf("two files at %q", p)
			}
			seen[p] = true
		}
		for _, o := range cfg.Objects {
			check(o.Path)
			for _, e := range o.JMESPath {
				check(e.Path)
			}
		}
	})
}

// FuzzParseARN: never panics; what it accepts prints back the same.
func FuzzParseARN(f *testing.F) {
	for _, s := range []string{"arn:aws:secretsmanager:us-east-1:123456789012:secret:a-AbCdEf", "arn:aws:ssm:eu-west-1:123456789012:parameter/a/b", "arn::::", "arn:aws:iam::123456789012:role/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseARN(s)
		if err == nil && a.String() != s {
			t.Errorf("ParseARN(%q).String() = %q", s, a.String())
		}
	})
}

// FuzzParseAttributes: the driver's attributes JSON never panics the parser.
func FuzzParseAttributes(f *testing.F) {
	f.Add(`{"objects":"- {objectName: a}","region":"us-east-1"}`)
	f.Add(`{"a":1}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, raw string) {
		attrs, err := ParseAttributes(raw)
		if err == nil {
			_, _ = Parse(attrs, Options{})
		}
	})
}
