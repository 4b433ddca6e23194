package spc

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
)

// Manifest is a SecretProviderClass read from a file, or a bare parameters
// map (Kind empty) as found in a Helm values file or a test fixture.
type Manifest struct {
	Kind, APIVersion, Name, Namespace, Provider string
	Parameters                                  map[string]string
	SecretObjects                               []SecretObject
	// Line is where the document starts in its file.
	Line int
}

// SecretObject is the driver's own sync declaration (spec.secretObjects):
// coffer checks that each data entry names a file the class produces.
type SecretObject struct {
	SecretName string `yaml:"secretName"`
	Data       []struct {
		ObjectName string `yaml:"objectName"`
		Key        string `yaml:"key"`
	} `yaml:"data"`
}

type manifestDoc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Provider      string            `yaml:"provider"`
		Parameters    map[string]string `yaml:"parameters"`
		SecretObjects []SecretObject    `yaml:"secretObjects"`
	} `yaml:"spec"`
}

// ReadManifests reads every YAML document of r: SecretProviderClasses, or
// one bare map of parameters. Other kinds are skipped, so a file with a
// Deployment next to its SecretProviderClass can be checked as it is.
func ReadManifests(r io.Reader) ([]Manifest, error) {
	dec := yaml.NewDecoder(r)
	var out []Manifest
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML: %w", err)
		}
		if len(node.Content) == 0 || node.Content[0].Kind != yaml.MappingNode {
			continue
		}
		var doc manifestDoc
		if err := node.Decode(&doc); err != nil {
			// Not a SecretProviderClass shape; maybe a parameters map.
			var params map[string]string
			if perr := node.Decode(&params); perr == nil && params[KeyObjects] != "" {
				out = append(out, Manifest{Parameters: params, Line: node.Line})
				continue
			}
			if isSPC(node.Content[0]) {
				return nil, fmt.Errorf("line %d: SecretProviderClass does not match its schema: %w (spec.parameters values must be strings: quote them)", node.Line, err)
			}
			continue
		}
		if doc.Kind == "" {
			var params map[string]string
			if err := node.Decode(&params); err == nil && params[KeyObjects] != "" {
				out = append(out, Manifest{Parameters: params, Line: node.Line})
			}
			continue
		}
		if doc.Kind != "SecretProviderClass" {
			continue
		}
		out = append(out, Manifest{
			Kind: doc.Kind, APIVersion: doc.APIVersion, Name: doc.Metadata.Name, Namespace: doc.Metadata.Namespace,
			Provider: doc.Spec.Provider, Parameters: doc.Spec.Parameters, SecretObjects: doc.Spec.SecretObjects, Line: node.Line,
		})
	}
	return out, nil
}

func isSPC(n *yaml.Node) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "kind" && n.Content[i+1].Value == "SecretProviderClass" {
			return true
		}
	}
	return false
}

// Describe names the manifest in messages.
func (m Manifest) Describe() string {
	if m.Kind == "" {
		return fmt.Sprintf("parameters (line %d)", m.Line)
	}
	name := m.Name
	if m.Namespace != "" {
		name = m.Namespace + "/" + name
	}
	return fmt.Sprintf("SecretProviderClass %s (line %d)", name, m.Line)
}

// Check validates the manifest as the provider would at mount time, plus
// what only the manifest shows: the apiVersion and that every
// secretObjects entry names a file this class produces.
func (m Manifest) Check(opts Options) (*Config, error) {
	attrs := make(map[string]string, len(m.Parameters)+1)
	for k, v := range m.Parameters {
		attrs[k] = v
	}
	if m.Name != "" {
		attrs[AttrSPCName] = m.Name
	}
	cfg, err := Parse(attrs, opts)
	var ps yamlcheck.Checker
	var verr *ValidationError
	if errors.As(err, &verr) {
		ps.Problems = append(ps.Problems, verr.Problems...)
	} else if err != nil {
		return nil, err
	}
	if m.Kind != "" {
		if !strings.HasPrefix(m.APIVersion, "secrets-store.csi.x-k8s.io/") {
			ps.Add("apiVersion", "", "%q is not the driver's API group; use secrets-store.csi.x-k8s.io/v1", m.APIVersion)
		}
		if m.Name == "" {
			ps.Add("metadata", "name", "is required")
		}
	}
	if cfg != nil {
		// The driver reads secretObjects from the mount's files: those
		// with writeFile: false are not there, templated files are.
		files := map[string]bool{}
		for _, o := range cfg.Objects {
			if !o.NoFile {
				files[o.Path] = true
			}
			for _, e := range o.JMESPath {
				if !e.NoFile {
					files[e.Path] = true
				}
			}
		}
		for _, f := range cfg.Files {
			files[f.Path] = true
		}
		for i, so := range m.SecretObjects {
			for j, d := range so.Data {
				if !files[d.ObjectName] {
					ps.Add(fmt.Sprintf("secretObjects[%d] (%s).data[%d]", i, yamlcheck.Name(so.SecretName), j), "objectName",
						"%q is not a file this SecretProviderClass writes; use one of: %s", d.ObjectName, strings.Join(slices.Sorted(maps.Keys(files)), ", "))
				}
			}
		}
	}
	if err := Invalid(m.Name, ps.Problems); err != nil {
		return nil, err
	}
	return cfg, nil
}
