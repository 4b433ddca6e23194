package yamlcheck

import (
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

func mapping(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func TestFieldsAndScalar(t *testing.T) {
	valid := []string{"objectName", "objectType"}
	tests := map[string]struct {
		src    string
		hints  map[string]string
		values map[string]string
		want   []Problem
	}{
		"keys match case-insensitively, under the valid spelling": {
			src:    "objectname: ' a '\nOBJECTTYPE: b",
			values: map[string]string{"objectName": "a", "objectType": "b"},
		},
		"a typo gets a suggestion": {
			src:  "objectNmae: a",
			want: []Problem{{Where: "w", Field: "objectNmae", Message: `unknown key; did you mean "objectName"? (valid keys: objectName, objectType)`}},
		},
		"a stranger gets the list": {
			src:  "region: a",
			want: []Problem{{Where: "w", Field: "region", Message: "unknown key; valid keys are objectName, objectType"}},
		},
		"a hint wins over a suggestion": {
			src:   "Name: a",
			hints: map[string]string{"name": "use objectName"},
			want:  []Problem{{Where: "w", Field: "Name", Message: "unknown key; use objectName"}},
		},
		"a duplicate is reported once, the first kept": {
			src:    "objectName: a\nobjectname: b",
			values: map[string]string{"objectName": "a"},
			want:   []Problem{{Where: "w", Field: "objectName", Message: "is set twice (line 2); keep one"}},
		},
		"a non-scalar value is reported": {
			src:    "objectName: [a]",
			values: map[string]string{"objectName": ""},
			want:   []Problem{{Where: "w", Field: "objectName", Message: "must be a single value, found a list at line 1"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := &Checker{Hints: tc.hints}
			f := c.Fields(mapping(t, tc.src), valid, "w")
			for k, want := range tc.values {
				if got := c.Scalar(f, k, "w"); got != want {
					t.Errorf("Scalar(%s) = %q, want %q", k, got, want)
				}
			}
			if !reflect.DeepEqual(c.Problems, tc.want) {
				t.Errorf("problems = %q, want %q", c.Problems, tc.want)
			}
		})
	}
}

func TestNearest(t *testing.T) {
	candidates := []string{"region", "objects", "failoverRegion"}
	tests := map[string]string{
		"regoin":      "region",
		"OBJECTS":     "objects",
		"failover":    "",
		"x":           "",
		"failoverReg": "failoverRegion",
	}
	for key, want := range tests {
		if got := Nearest(key, candidates); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestProblemString(t *testing.T) {
	tests := map[string]Problem{
		"m":               {Message: "m"},
		"w: m":            {Where: "w", Message: "m"},
		`w: field "f": m`: {Where: "w", Field: "f", Message: "m"},
	}
	for want, p := range tests {
		if got := p.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", p, got, want)
		}
	}
}
