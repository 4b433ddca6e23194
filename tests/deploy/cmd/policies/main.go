// Command policies prints the chart's ValidatingAdmissionPolicies and their
// bindings, rendered for a release, as JSON lines: make e2e installs them
// on the e2e suite's apiserver, so that its scenarios run under them.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	deploy "github.com/coffer-csi/coffer/tests/deploy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "policies: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("release", "coffer", "release name")
	namespace := flag.String("namespace", "coffer-system", "release namespace")
	values := flag.String("values", "", "chart values, as YAML")
	flag.Parse()
	root, err := deploy.RepoRoot()
	if err != nil {
		return err
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(*values), &vals); err != nil {
		return fmt.Errorf("-values: %w", err)
	}
	rel, err := deploy.Render(filepath.Join(root, "deployment", "charts", "coffer"), *name, *namespace, vals)
	if err != nil {
		return err
	}
	objs, err := deploy.Objects(rel)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	n := 0
	for _, o := range objs {
		switch o.GetKind() {
		case "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			if err := out.Encode(o.Object); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("the chart rendered no admission policies with %q", *values)
	}
	return nil
}
