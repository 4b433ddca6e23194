package esoconvert

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/coffer-csi/coffer/internal/jmes"
)

// TestPropertySelectsWhatESOSelects: the jmesPath expression a property
// becomes selects, on the secret's JSON, the value ESO's AWS provider
// reads (gjson: the key with dots first, then the path; a number an array
// index), and differs only where the mapping table says: a key with dots
// whose value is empty or false reads the path, and null is not a value.
func TestPropertySelectsWhatESOSelects(t *testing.T) {
	for _, c := range []struct {
		property, doc string
		// want is the selected value as JSON; "" when nothing is (null).
		want string
	}{
		{"password", `{"password": "pw"}`, `"pw"`},
		{"name.first", `{"name": {"first": "Tom"}}`, `"Tom"`},
		{"name.first", `{"name.first": "dotted", "name": {"first": "Tom"}}`, `"dotted"`},
		{"friends.1.first", `{"friends": [{"first": "Dale"}, {"first": "Roger"}]}`, `"Roger"`},
		{`conn\.host`, `{"conn.host": "db", "conn": {"host": "other"}}`, `"db"`},
		{"a-b", `{"a-b": 1}`, `1`},
		{"port", `{"port": 5432}`, `5432`},
		{"nested", `{"nested": {"x": [1, 2]}}`, `{"x":[1,2]}`},
		// The differences the table states.
		{"a.b", `{"a.b": "", "a": {"b": "path"}}`, `"path"`},
		{"a.b", `{"a.b": false, "a": {"b": "path"}}`, `"path"`},
		{"gone", `{"gone": null}`, ""},
		{"missing", `{"other": 1}`, ""},
	} {
		t.Run(c.property+" of "+c.doc, func(t *testing.T) {
			expr, _, err := jmesPath(c.property)
			if err != nil {
				t.Fatal(err)
			}
			compiled, err := jmes.Compile(expr)
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			doc, err := jmes.DecodeJSON([]byte(c.doc), true)
			if err != nil {
				t.Fatal(err)
			}
			got, err := compiled.Search(context.Background(), doc, 1<<20)
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			text := ""
			if got != nil {
				b, err := json.Marshal(got)
				if err != nil {
					t.Fatal(err)
				}
				text = string(b)
			}
			if text != c.want {
				t.Errorf("%s selects %s, want %s", expr, text, c.want)
			}
		})
	}
}
