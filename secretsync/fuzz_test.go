package secretsync

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// FuzzParseDeclaration: whatever a syncSecrets declaration holds, parsing
// never panics and explains a refusal on one line.
func FuzzParseDeclaration(f *testing.F) {
	seeds := []string{
		"- secretName: slack-url\n  data:\n    - {key: address, objectName: dev_slackurl}",
		"- secretName: tls\n  type: kubernetes.io/tls\n  data: [{key: tls.crt, objectName: cert}, {key: tls.key, objectName: key}]",
		"- secretName: all\n  dataFrom: [{extract: {objectName: db}}]\n  creationPolicy: Merge\n  deletionPolicy: Delete",
		"- secretName: t\n  template:\n    data: {url: '{{ .db.user }}'}\n  refreshInterval: 1h\n  serviceAccountName: app",
		"[", "- 1", "secretName: x",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": "- {objectName: dev/slackurl, objectType: secretsmanager}\n- {objectName: db, objectType: secretsmanager, jmesPath: [{path: user, objectAlias: user}]}\n- {objectName: cert, objectType: secretsmanager}\n- {objectName: key, objectType: secretsmanager}"}, spc.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := Parse(raw, cfg); err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error spans lines: %q", err)
		}
	})
}

// FuzzTemplate: whatever a template says and whatever the values hold,
// building the Secret never panics, never puts a value in an error, and
// allocates no more than a fixed multiple of the Secret size limit.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`{{ .pw | b64enc }}`, `{{ range fromJson .list }}{{ . }}{{ end }}`,
		`{{range fromJson .list}}{{range fromJson $.list}}{{range fromJson $.list}}{{$.pw}}{{end}}{{end}}{{end}}`,
		`{{$x := .pw}}{{range fromJson .list}}{{$x = printf "%s%s" $x $x}}{{end}}`,
		`{{define "a"}}{{if .}}{{template "a" (slice . 1)}}{{template "a" (slice . 1)}}{{end}}{{end}}{{template "a" .list}}`,
		`{{ printf "%0999999999d" 1 }}`, `{{ range .pw }}{{ end }}`,
	} {
		f.Add(s, "[0,1,2,3]")
	}
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": "- {objectName: pw, objectType: secretsmanager}\n- {objectName: list, objectType: secretsmanager}"}, spc.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tmpl, list string) {
		decl := "[{secretName: s, data: [{key: pw, objectName: pw}, {key: list, objectName: list}], template: {data: {x: '" + strings.ReplaceAll(tmpl, "'", "''") + "'}}}]"
		secrets, err := Parse(decl, cfg)
		if err != nil {
			return
		}
		files := map[string]render.File{
			"pw":   {Path: "pw", Data: []byte(canary + "-fuzz"), Object: cfg.Objects[0]},
			"list": {Path: "list", Data: []byte(list), Object: cfg.Objects[1]},
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = secrets[0].Build(context.Background(), files)
		runtime.ReadMemStats(&after)
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Fatalf("error holds the value: %v", err)
		}
		if got, bound := after.TotalAlloc-before.TotalAlloc, uint64(maxTemplateAllocPerByte*MaxSecretBytes+64*len(list)); got > bound {
			t.Fatalf("allocated %d bytes, over %d", got, bound)
		}
	})
}

// FuzzAttackDeclaration generates hostile syncSecrets declarations
// (templates nested deep, widths fmt applies per element, the data map as
// a composite argument, many entries) and holds the process-level bounds
// on each: refused, or built within a fixed multiple of the Secret size
// limit in allocation, in a bounded time, with a one-line error that holds
// no value.
func FuzzAttackDeclaration(f *testing.F) {
	f.Add(uint8(0), uint32(100_000), uint32(0), uint16(0))
	f.Add(uint8(0), uint32(3_000), uint32(1), uint16(0))
	f.Add(uint8(1), uint32(0), uint32(4000), uint16(64))
	f.Add(uint8(1), uint32(0), uint32(99_999_999), uint16(1))
	f.Add(uint8(2), uint32(0), uint32(16), uint16(64))
	f.Add(uint8(2), uint32(0), uint32(8), uint16(200))
	f.Add(uint8(3), uint32(0), uint32(0), uint16(1000))
	// Within every cap: nesting under 100, the widest width (256) per
	// element of 2,000, the data map 31 times an action, 128 entries.
	f.Add(uint8(0), uint32(90), uint32(0), uint16(0))
	f.Add(uint8(0), uint32(45), uint32(1), uint16(0))
	f.Add(uint8(1), uint32(0), uint32(256), uint16(255))
	f.Add(uint8(2), uint32(0), uint32(31), uint16(255))
	f.Add(uint8(3), uint32(0), uint32(0), uint16(127))
	cfg, err := spc.Parse(map[string]string{"region": "us-east-1", "objects": "- {objectName: pw, objectType: secretsmanager}\n- {objectName: list, objectType: secretsmanager}"}, spc.Options{})
	if err != nil {
		f.Fatal(err)
	}
	list := "[" + strings.TrimSuffix(strings.Repeat(`"ab",`, 2000), ",") + "]"
	f.Fuzz(func(t *testing.T, shape uint8, depth, width uint32, count uint16) {
		depth %= 300_000
		var tmpl string
		entries := 1
		switch shape % 4 {
		case 0: // nesting: parenthesised pipelines, or nested ranges
			if width%2 == 0 {
				tmpl = "{{ " + strings.Repeat("(", int(depth)) + ".pw" + strings.Repeat(")", int(depth)) + " }}"
			} else {
				tmpl = strings.Repeat("{{ range fromJson .list }}", int(depth)) + "{{ $.pw }}" + strings.Repeat("{{ end }}", int(depth))
			}
		case 1: // a width fmt applies to each of 2,000 elements, count times
			tmpl = strings.Repeat(`{{ printf "%*v" `+strconv.Itoa(int(width%100_000_000))+` (fromJson .list) }}`, 1+int(count%256))
		case 2: // the data map as a composite argument of every printer
			args := strings.TrimSpace(strings.Repeat(". ", 1+int(width%32)))
			one := "{{ print " + args + " }}{{ println " + args + " }}{{ html " + args + " }}{{ js " + args + " }}{{ urlquery " + args + " }}{{ printf \"%v%q%x\" . . . }}"
			tmpl = strings.Repeat(one, 1+int(count%256))
		default: // many entries, each building the whole budget
			tmpl = `{{ printf "%s%s%s%s" .list .list .list .list }}`
			entries = 1 + int(count%2048)
		}
		var decl strings.Builder
		for i := range entries {
			fmt.Fprintf(&decl, "- {secretName: s%d, data: [{key: pw, objectName: pw}, {key: list, objectName: list}], template: {data: {x: %s}}}\n", i, strconv.Quote(tmpl))
		}
		start := time.Now()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		secrets, err := Parse(decl.String(), cfg)
		if err == nil {
			files := map[string]render.File{
				"pw":   {Path: "pw", Data: []byte(canary + "-fuzz"), Object: cfg.Objects[0]},
				"list": {Path: "list", Data: []byte(list), Object: cfg.Objects[1]},
			}
			for _, s := range secrets {
				if _, err = s.Build(context.Background(), files); err != nil {
					break
				}
			}
		}
		runtime.ReadMemStats(&after)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("took %s", took)
		}
		if err != nil && (strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "\n")) {
			t.Fatalf("error holds the value or spans lines: %.300q", err)
		}
		// Entries are built one at a time: each may allocate what one
		// Secret's build may, and parsing a fixed multiple of its input.
		perSecret := uint64(maxTemplateAllocPerByte*MaxSecretBytes + 64*len(list))
		if got, bound := after.TotalAlloc-before.TotalAlloc, perSecret*uint64(entries)+uint64(64*decl.Len()); got > bound {
			t.Fatalf("allocated %d bytes for %d entries, over %d", got, entries, bound)
		}
	})
}
