package esoconvert

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestHostileInput: inputs at the limits convert within bounded memory,
// whole or refused as a whole: the most nodes the size allows, the most
// documents, the most ExternalSecrets, the most unknown fields, and
// nesting just under the limit. The time each took is logged, not
// asserted.
func TestHostileInput(t *testing.T) {
	head := "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es}\nspec:\n"
	fill := func(prefix, item string) string {
		n := (MaxInputBytes - len(prefix)) / len(item)
		return prefix + strings.Repeat(item, n)
	}
	es := func(i int) string {
		return fmt.Sprintf("---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es%d}\nspec: {data: [{secretKey: k, remoteRef: {key: k}}]}\n", i)
	}
	var many strings.Builder
	for i := 0; i < MaxDocuments; i++ {
		many.WriteString(es(i))
	}
	var unknown strings.Builder
	unknown.WriteString(head + "  data: [{secretKey: k, remoteRef: {key: k}}]\n")
	for i := 0; unknown.Len() < MaxInputBytes-32; i++ {
		fmt.Fprintf(&unknown, "  f%d: 1\n", i)
	}
	for _, c := range []struct{ name, input string }{
		{"one-letter items", fill(head+"  data:\n", "  - a\n")},
		{"data entries", fill(head+"  data:\n", "  - {secretKey: k, remoteRef: {key: k}}\n")},
		{"ExternalSecrets", many.String()},
		{"unknown fields", unknown.String()},
		{"nesting", head + "  x: " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.input) > MaxInputBytes {
				t.Fatalf("the input is %d bytes, over the limit", len(c.input))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			res, err := Convert([]byte(c.input), Options{})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			allocated := after.TotalAlloc - before.TotalAlloc
			lines := 0
			if res != nil {
				lines = len(res.Lines)
			}
			t.Logf("%d bytes: %v, %d MiB allocated, %d lines, error %v", len(c.input), elapsed.Round(time.Millisecond), allocated>>20, lines, err)
			if allocated > 256<<20 {
				t.Errorf("%d MiB allocated, over 256", allocated>>20)
			}
		})
	}
}

// TestLinesShowControlCharacters: a name or namespace with terminal
// escapes, a right-to-left override or bytes that are not UTF-8 reaches
// stderr escaped, so a line cannot clear the screen, recolour or reorder
// what follows it.
func TestLinesShowControlCharacters(t *testing.T) {
	input := `apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: "aws\e[2J"}
spec: {provider: {aws: {service: SecretsManager, auth: {jwt: {serviceAccountRef: {name: eso, namespace: "ext\e[31mred\u202e"}}}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: "es\x07", namespace: "team\e]0;title\a"}
spec:
  secretStoreRef: {name: "aws\e[2J", kind: ClusterSecretStore}
  data: [{secretKey: k, remoteRef: {key: "app/k\e[1m"}}]
`
	res, err := Convert([]byte(input), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Lines) == 0 {
		t.Fatal("no lines")
	}
	for _, l := range res.Lines {
		s := l.String()
		if i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }); i >= 0 {
			t.Errorf("line holds %U: %q", []rune(s[i:])[0], s)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"plain é text", "plain é text"},
		{"esc\x1b[2J", `esc\x1b[2J`},
		{"rtl\u202eevil", `rtl\u202eevil`},
		{"bad\xffbyte", `bad\xffbyte`},
	} {
		if got := printable(c.in); got != c.want {
			t.Errorf("printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
