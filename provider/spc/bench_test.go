package spc

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse measures validating a realistic class: 20 objects, half
// with jmesPath entries, as every Mount does before any AWS call.
func BenchmarkParse(b *testing.B) {
	var objects strings.Builder
	for i := range 10 {
		fmt.Fprintf(&objects, "- objectName: prod/app-%02d\n  objectType: secretsmanager\n  jmesPath:\n    - {path: username, objectAlias: user-%02d}\n    - {path: password, objectAlias: pass-%02d}\n", i, i, i)
		fmt.Fprintf(&objects, "- objectName: /app/prod/param-%02d\n  objectType: ssmparameter\n", i)
	}
	attrs := map[string]string{
		"objects": objects.String(), "region": "us-east-1",
		AttrPodName: "app-0", AttrPodNamespace: "default", AttrServiceAccount: "app",
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(attrs, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
