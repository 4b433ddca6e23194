package render_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coffer-csi/coffer/provider/fetch"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// attackWallBound is the most one generated attack may take, parse and
// render together, on a loaded 2-core machine: far above what any
// legitimate class takes, far below a mount's deadline.
const attackWallBound = 5 * time.Second

// attack is a class built by a grammar of the attacks the review found:
// nesting, formats padded per element, composite arguments, many entries.
type attack struct {
	objects, files string
}

// jmesNesters wrap an expression once more; each is a way the parser
// recurses.
var jmesNesters = []struct{ open, close string }{
	{"(", ")"}, {"[", "]"}, {"{a: ", "}"}, {"!", ""}, {"&", ""}, {"not_null(", ")"},
	{"a[?", "]"}, {"to_array(", ")"}, {"a || ", ""}, {"a.", ""}, {"[@, ", "]"}, {"join(',', [", "])"},
}

// tmplNesters wrap a template action or pipeline once more.
var tmplNesters = []struct{ open, close string }{
	{"{{ if .db }}", "{{ end }}"}, {"{{ range fromJson .list }}", "{{ end }}"}, {"{{ with .db }}", "{{ end }}"},
}

// composites are template calls whose arguments may be the data map or a
// list; widths are applied to them.
var composites = []string{"print", "println", "html", "js", "urlquery", `printf "%[1]*[2]v"`, `printf "%[1]*.[1]*[2]q"`, `printf "%-[1]*[2]x"`, "toJson", "quote"}

var compositeArgs = []string{".", "(fromJson .list)", ".db", "(fromJson .db)", ". . . ."}

// generate builds the attack that (shape, depth, width, count, pick)
// describe; every input is valid, so the fuzzer explores attacks, not
// syntax errors.
func generate(shape uint8, depth uint32, width uint32, count uint16, pick uint8) attack {
	depth %= 300_000
	count %= 1024
	obj := "- {objectName: db, objectType: secretsmanager, writeFile: false}\n- {objectName: list, objectType: secretsmanager, writeFile: false}"
	switch shape % 4 {
	case 0: // a jmesPath expression nested depth levels deep
		n := jmesNesters[int(pick)%len(jmesNesters)]
		path := strings.Repeat(n.open, int(depth)) + "a" + strings.Repeat(n.close, int(depth))
		return attack{objects: obj + fmt.Sprintf("\n- {objectName: db, objectType: secretsmanager, objectAlias: d, jmesPath: [{path: %q, objectAlias: x}]}", path)}
	case 1: // a template nested depth levels deep
		n := tmplNesters[int(pick)%len(tmplNesters)]
		body := strings.Repeat(n.open, int(depth)) + "{{ .db }}" + strings.Repeat(n.close, int(depth))
		if pick%2 == 1 {
			body = "{{ " + strings.Repeat("(", int(depth)) + ".db" + strings.Repeat(")", int(depth)) + " }}"
		}
		return attack{objects: obj, files: fmt.Sprintf("[{path: out, template: %q}]", body)}
	case 2: // a width, applied per element, to composite arguments, count times
		call := composites[int(pick)%len(composites)]
		arg := compositeArgs[int(pick/16)%len(compositeArgs)]
		w := int(width % 100_000_000)
		one := fmt.Sprintf(`{{ %s %d %s }}`, call, w, arg)
		if !strings.HasPrefix(call, "printf") {
			one = fmt.Sprintf(`{{ %s %s }}`, call, strings.TrimSpace(strings.Repeat(arg+" ", 1+int(width%64))))
		}
		return attack{objects: obj, files: fmt.Sprintf("[{path: out, template: %q}]", strings.Repeat(one, 1+int(count%256)))}
	default: // count entries never written, each multiplying the document
		var entries []string
		expr := "[" + strings.TrimSuffix(strings.Repeat("@,", 2+int(width%14)), ",") + "]"
		for i := range int(count) {
			entries = append(entries, fmt.Sprintf("{path: %q, objectAlias: u%d, writeFile: false}", expr, i))
		}
		return attack{objects: obj + "\n- {objectName: db, objectType: secretsmanager, objectAlias: d, jmesPath: [" + strings.Join(entries, ", ") + "]}"}
	}
}

// FuzzAttackClass generates hostile classes (nesting, per-element widths,
// composite arguments, outputs never written) and holds the process-level
// bounds on each: the class is refused or rendered within a fixed multiple
// of the response limit in allocation (which bounds the peak heap it can
// add), within attackWallBound, with a one-line error that holds no value.
func FuzzAttackClass(f *testing.F) {
	f.Add(uint8(0), uint32(200_000), uint32(0), uint16(0), uint8(0))
	f.Add(uint8(0), uint32(5_000), uint32(0), uint16(0), uint8(3))
	f.Add(uint8(0), uint32(60), uint32(0), uint16(0), uint8(10))
	f.Add(uint8(1), uint32(100_000), uint32(0), uint16(0), uint8(1))
	f.Add(uint8(1), uint32(3_000), uint32(0), uint16(0), uint8(0))
	f.Add(uint8(2), uint32(0), uint32(4000), uint16(64), uint8(5+16))
	f.Add(uint8(2), uint32(0), uint32(63), uint16(255), uint8(0))
	f.Add(uint8(2), uint32(0), uint32(63), uint16(255), uint8(2))
	f.Add(uint8(2), uint32(0), uint32(99_999_999), uint16(1), uint8(6+32))
	f.Add(uint8(3), uint32(0), uint32(7), uint16(256), uint8(0))
	// Within every cap: nesting just under 100 levels, the widest width
	// (256) per element, 64 entries an object.
	f.Add(uint8(0), uint32(45), uint32(0), uint16(0), uint8(1))
	f.Add(uint8(1), uint32(90), uint32(0), uint16(0), uint8(1))
	f.Add(uint8(2), uint32(0), uint32(256), uint16(255), uint8(5+16))
	f.Add(uint8(2), uint32(0), uint32(256), uint16(255), uint8(6+16))
	f.Add(uint8(2), uint32(0), uint32(63), uint16(255), uint8(2))
	f.Add(uint8(3), uint32(0), uint32(13), uint16(64), uint8(0))
	f.Fuzz(func(t *testing.T, shape uint8, depth, width uint32, count uint16, pick uint8) {
		a := generate(shape, depth, width, count, pick)
		start := time.Now()
		var err error
		var files []render.File
		const limit = 16 << 10
		list := "[" + strings.TrimSuffix(strings.Repeat(`"ab",`, 1000), ",") + "]"
		db := `{"a":"` + fuzzCanary + `","k":"` + strings.Repeat("x", 4<<10) + `"}`
		got := allocated(func() {
			params := map[string]string{"objects": a.objects, "region": "us-east-1"}
			if a.files != "" {
				params["files"] = a.files
			}
			var cfg *spc.Config
			cfg, err = spc.Parse(params, spc.Options{})
			if err != nil {
				return
			}
			values := make([]fetch.Value, 0, len(cfg.Objects))
			for _, o := range cfg.Objects {
				data := db
				if o.Name == "list" {
					data = list
				}
				values = append(values, fetch.Value{Object: o, Data: []byte(data), Version: "v1"})
			}
			files, err = render.Files(context.Background(), values, render.Options{MaxResponseBytes: limit, Templates: cfg.Files})
		})
		if took := time.Since(start); took > attackWallBound {
			t.Errorf("took %s, over %s", took, attackWallBound)
		}
		// Parsing may cost a fixed multiple of the class's own size too.
		if bound := uint64(maxAllocPerLimitByte*(limit+len(db)+len(list)+len(a.objects)+len(a.files)) + allocSlack); got > bound {
			t.Fatalf("allocated %d bytes, over %d (%d times the limit and the values, plus %d)", got, bound, maxAllocPerLimitByte, allocSlack)
		}
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, fuzzCanary) || strings.Contains(msg, "\n") {
				t.Fatalf("error holds a value or spans lines: %.500q", msg)
			}
			return
		}
		total := 0
		for _, f := range render.Written(files) {
			total += len(f.Data)
		}
		if total > limit {
			t.Errorf("wrote %d bytes, over the limit of %d", total, limit)
		}
	})
}
