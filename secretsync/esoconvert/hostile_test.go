package esoconvert

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode"
)

// TestHostileInput: inputs at the limits convert whole or are refused as
// a whole, with the heap growing by under 256 MiB (about 90 MiB
// measured) and under 2 GiB allocated in all (1.2 GiB measured, for
// ExternalSecrets of 256 entries filling the input): the most nodes the
// size allows, the most documents, the most ExternalSecrets, as many
// ExternalSecrets of the most entries as fit, the most unknown fields,
// and nesting just under the limit. The time each took is logged, not
// asserted.
func TestHostileInput(t *testing.T) {
	head := "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es}\nspec:\n"
	fill := func(prefix, item string) string {
		n := (MaxInputBytes - len(prefix)) / len(item)
		return prefix + strings.Repeat(item, n)
	}
	// externalSecrets are as many ExternalSecrets of entries data
	// entries each as the limits allow.
	externalSecrets := func(entries int) string {
		var b strings.Builder
		for i := 0; i < MaxDocuments; i++ {
			var es strings.Builder
			fmt.Fprintf(&es, "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es%d}\nspec:\n  data:\n", i)
			for j := 0; j < entries; j++ {
				fmt.Fprintf(&es, "  - {secretKey: k%d, remoteRef: {key: k%d, property: a.%d}}\n", j, j, j)
			}
			if b.Len()+es.Len() > MaxInputBytes {
				break
			}
			b.WriteString(es.String())
		}
		return b.String()
	}
	var unknown strings.Builder
	unknown.WriteString(head + "  data: [{secretKey: k, remoteRef: {key: k}}]\n")
	for i := 0; unknown.Len() < MaxInputBytes-32; i++ {
		fmt.Fprintf(&unknown, "  f%d: 1\n", i)
	}
	for _, c := range []struct{ name, input string }{
		{"one-letter items", fill(head+"  data:\n", "  - a\n")},
		{"data entries", fill(head+"  data:\n", "  - {secretKey: k, remoteRef: {key: k}}\n")},
		{"ExternalSecrets", externalSecrets(1)},
		{"ExternalSecrets of the most entries", externalSecrets(maxData)},
		{"unknown fields", unknown.String()},
		{"nesting", head + "  x: " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if len(c.input) > MaxInputBytes {
				t.Fatalf("the input is %d bytes, over the limit", len(c.input))
			}
			var res *Result
			var err error
			start := time.Now()
			peak, allocated := heapDuring(func() { res, err = Convert([]byte(c.input), Options{}) })
			elapsed := time.Since(start)
			lines, classes := 0, 0
			if res != nil {
				lines, classes = len(res.Lines), res.Classes
			}
			t.Logf("%d bytes: %v, heap at most %d MiB, %d MiB allocated, %d classes, %d lines, error %v", len(c.input), elapsed.Round(time.Millisecond), peak>>20, allocated>>20, classes, lines, err)
			if peak > 256<<20 {
				t.Errorf("the heap grew by %d MiB, over 256", peak>>20)
			}
			if allocated > 2<<30 {
				t.Errorf("%d MiB allocated, over 2 GiB", allocated>>20)
			}
		})
	}
}

// heapDuring runs f and returns how much the heap grew while it ran (its
// allocated bytes, live or not yet collected, read every millisecond and
// once f returns: the peak or a little under it) and how much f allocated
// in all.
func heapDuring(f func()) (peak, allocated uint64) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var most uint64
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		most = max(most, m.HeapAlloc)
	}
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	f()
	close(done)
	<-sampled
	sample()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return most - min(most, before.HeapAlloc), after.TotalAlloc - before.TotalAlloc
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
