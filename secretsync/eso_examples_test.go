package secretsync

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/tmpl"
)

// esoUnsupported are the templates of testdata/eso-examples that use a
// function coffer does not have ("file#document/key": the function). Each
// must be refused for that function alone, never for a limit.
var esoUnsupported = map[string]string{
	"aws-acm-external-secret.yaml#0/tls.crt":       "filterPEM",
	"aws-acm-external-secret.yaml#0/tls.key":       "filterPEM",
	"aws-acm-external-secret-chain.yaml#0/ca.crt":  "filterPEM",
	"aws-acm-external-secret-chain.yaml#0/tls.crt": "filterPEM",
	"aws-acm-external-secret-chain.yaml#0/tls.key": "filterPEM",
	"bitwarden-secret.yaml#1/ssh-privatekey":       "toString",
}

// esoSpec is what the test reads of an ExternalSecret's spec (or a
// ClusterExternalSecret's externalSecretSpec).
type esoSpec struct {
	Target struct {
		Template struct {
			Type        string            `yaml:"type"`
			MergePolicy string            `yaml:"mergePolicy"`
			Data        map[string]string `yaml:"data"`
			Metadata    struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			TemplateFrom []struct {
				Literal *string `yaml:"literal"`
			} `yaml:"templateFrom"`
		} `yaml:"template"`
	} `yaml:"target"`
	Data []struct {
		SecretKey string `yaml:"secretKey"`
	} `yaml:"data"`
	DataFrom []yaml.Node `yaml:"dataFrom"`
}

// esoDocument is one YAML document of an example.
type esoDocument struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		esoSpec            `yaml:",inline"`
		ExternalSecretSpec *esoSpec `yaml:"externalSecretSpec"`
	} `yaml:"spec"`
}

// jinja are the lines mkdocs reads ({% raw %}, {% endraw %}), not YAML.
var jinja = regexp.MustCompile(`(?m)^\s*\{%-?\s*(end)?raw\s*-?%\}\s*$`)

// widths are the numbers of printf verbs' widths and precisions.
var widths = regexp.MustCompile(`%[-+# 0]*([0-9]*)(?:\.([0-9]+))?[a-zA-Z]`)

// TestESOPublishedTemplatesWithinLimits: no limit refuses what ESO's
// users write. Every ExternalSecret template ESO publishes in its docs
// (testdata/eso-examples: its templating guide and snippets, and its AWS
// provider's ExternalSecrets), as the equivalent syncSecrets entry (data
// and dataFrom as many as ESO's, template.data, templateFrom literals as
// template.data keys, labels and annotations), parses, and sits far below
// every limit: a tenth of each at most. Templates with a function coffer
// lacks (esoUnsupported) are refused for that function only.
func TestESOPublishedTemplatesWithinLimits(t *testing.T) {
	paths, err := filepath.Glob("testdata/eso-examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	checked, skipped, documents := 0, 0, 0
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(raw, []byte("# From github.com/external-secrets/external-secrets ")) {
			t.Errorf("%s: the first line does not name its source", path)
		}
		perFile := 0
		dec := yaml.NewDecoder(bytes.NewReader(jinja.ReplaceAll(raw, nil)))
		for i := 0; ; i++ {
			var doc esoDocument
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", path, i, err)
			}
			spec := &doc.Spec.esoSpec
			switch doc.Kind {
			case "ExternalSecret":
			case "ClusterExternalSecret":
				if spec = doc.Spec.ExternalSecretSpec; spec == nil {
					t.Fatalf("%s: document %d: a ClusterExternalSecret without externalSecretSpec", path, i)
				}
			default:
				continue
			}
			documents++
			if perFile++; perFile > MaxSyncSecrets/10 {
				t.Errorf("%s: %d ExternalSecrets in one file, over a tenth of the limit of %d syncSecrets", path, perFile, MaxSyncSecrets)
			}
			where := fmt.Sprintf("%s#%d", filepath.Base(path), i)
			entry, templates := esoEntry(t, where, spec)
			for key, text := range templates {
				if fn, ok := esoUnsupported[where+"/"+key]; ok {
					skipped++
					esoRefusedFor(t, where+"/"+key, text, fn)
					continue
				}
				checked++
				esoFarBelow(t, where+"/"+key, text)
				entry.Template.Data[key] = text
			}
			if len(entry.Template.Data) < len(templates) {
				entry.Type = "" // its keys are the skipped templates'
			}
			if len(entry.Template.Data) == 0 {
				entry.Template = nil
			}
			decl, err := yaml.Marshal([]*esoEntryYAML{entry})
			if err != nil {
				t.Fatal(err)
			}
			secrets, err := Parse(string(decl), cfg)
			if err != nil {
				t.Errorf("%s: Parse refused the equivalent of ESO's example:\n%s\n%v", where, decl, err)
				continue
			}
			if len(secrets) != 1 {
				t.Errorf("%s: %d Secrets, want 1", where, len(secrets))
			}
			// Far below every list limit.
			for what, n := range map[string][2]int{
				"data":          {len(entry.Data), MaxDataEntries},
				"dataFrom":      {len(entry.DataFrom), MaxDataFrom},
				"template.data": {len(templates), MaxDataEntries},
				"labels":        {len(entry.Labels), MaxMetadataEntries},
				"annotations":   {len(entry.Annotations), MaxMetadataEntries},
			} {
				if n[0] > n[1]/10 {
					t.Errorf("%s: %s has %d entries, over a tenth of its limit of %d", where, what, n[0], n[1])
				}
			}
		}
	}
	// ESO's docs at helm-chart-2.9.0: 43 templates coffer's functions
	// express, and 6 that need a function of ESO's, in 37 ExternalSecrets.
	if documents < 37 || checked < 43 || skipped != len(esoUnsupported) {
		t.Errorf("%d ExternalSecrets, %d templates checked and %d skipped, want at least 37, 43 and %d: was a file dropped?", documents, checked, skipped, len(esoUnsupported))
	}
	t.Logf("%d ExternalSecrets, %d templates within every limit, %d refused for a function coffer lacks", documents, checked, skipped)
}

// esoEntryYAML is a syncSecrets entry, as written in a class.
type esoEntryYAML struct {
	SecretName         string              `yaml:"secretName"`
	Type               string              `yaml:"type,omitempty"`
	ServiceAccountName string              `yaml:"serviceAccountName"`
	Labels             map[string]string   `yaml:"labels,omitempty"`
	Annotations        map[string]string   `yaml:"annotations,omitempty"`
	Data               []map[string]string `yaml:"data,omitempty"`
	DataFrom           []map[string]string `yaml:"dataFrom,omitempty"`
	Template           *struct {
		MergePolicy string            `yaml:"mergePolicy,omitempty"`
		Data        map[string]string `yaml:"data"`
	} `yaml:"template,omitempty"`
}

// esoEntry is the syncSecrets entry equivalent to spec, without its
// templates, and the templates by key (a templateFrom literal becomes
// key templateFrom-<n>).
func esoEntry(t *testing.T, where string, spec *esoSpec) (*esoEntryYAML, map[string]string) {
	t.Helper()
	tp := spec.Target.Template
	e := &esoEntryYAML{
		SecretName:         "eso",
		Type:               tp.Type,
		ServiceAccountName: "app",
		Labels:             tp.Metadata.Labels,
		Annotations:        tp.Metadata.Annotations,
	}
	e.Template = &struct {
		MergePolicy string            `yaml:"mergePolicy,omitempty"`
		Data        map[string]string `yaml:"data"`
	}{MergePolicy: tp.MergePolicy, Data: map[string]string{}}
	for _, d := range spec.Data {
		e.Data = append(e.Data, map[string]string{"key": d.SecretKey, "objectName": "dev/slackurl"})
	}
	// Every extract (or find, or generator) reads a JSON object.
	extracts := []string{"db.json", "extra.json"}
	if len(spec.DataFrom) > len(extracts) {
		t.Fatalf("%s: %d dataFrom entries, more than the test's %d JSON files", where, len(spec.DataFrom), len(extracts))
	}
	for i := range spec.DataFrom {
		e.DataFrom = append(e.DataFrom, map[string]string{"extract": extracts[i]})
	}
	if len(e.Data) == 0 && len(e.DataFrom) == 0 {
		// ESO's example elides them ("# ..."): one extract stands for them.
		e.DataFrom = []map[string]string{{"extract": "db.json"}}
	}
	templates := map[string]string{}
	for k, v := range tp.Data {
		templates[k] = v
	}
	for i, f := range tp.TemplateFrom {
		if f.Literal != nil {
			templates["templateFrom-"+strconv.Itoa(i)] = *f.Literal
		}
	}
	return e, templates
}

// esoFarBelow: text is under a tenth of the template limits: length,
// nesting (bounded above by its actions and parentheses: each block, else
// if and parenthesis needs one) and printf widths.
func esoFarBelow(t *testing.T, where, text string) {
	t.Helper()
	if len(text) > tmpl.MaxTemplateBytes/10 {
		t.Errorf("%s: %d bytes, over a tenth of the limit of %d", where, len(text), tmpl.MaxTemplateBytes)
	}
	depth := 0
	for _, action := range strings.Split(text, "{{")[1:] {
		action, _, _ = strings.Cut(action, "}}")
		depth += 1 + strings.Count(action, "(")
	}
	if depth > tmpl.MaxTemplateDepth/10 {
		t.Errorf("%s: %d actions and parentheses, over a tenth of the nesting limit of %d", where, depth, tmpl.MaxTemplateDepth)
	}
	for _, m := range widths.FindAllStringSubmatch(text, -1) {
		for _, n := range m[1:] {
			if w, _ := strconv.Atoi(n); w > tmpl.MaxFormatWidth/10 {
				t.Errorf("%s: a printf width of %d, over a tenth of the limit of %d", where, w, tmpl.MaxFormatWidth)
			}
		}
	}
}

// esoRefusedFor: the template alone, in an entry, is refused because fn
// is not defined, and for nothing else.
func esoRefusedFor(t *testing.T, where, text, fn string) {
	t.Helper()
	esoFarBelow(t, where, text)
	decl, err := yaml.Marshal([]map[string]any{{
		"secretName": "eso", "serviceAccountName": "app",
		"dataFrom": []map[string]string{{"extract": "db.json"}},
		"template": map[string]any{"data": map[string]string{"x": text}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(string(decl), testConfig(t))
	if err == nil || !strings.Contains(err.Error(), `function "`+fn+`" not defined`) || strings.Contains(err.Error(), "limit") {
		t.Errorf("%s: want a refusal for %s alone, got %v", where, fn, err)
	}
}
