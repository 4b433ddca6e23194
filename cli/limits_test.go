package cli

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/hostile"
)

// TestValidateRefusesHostileClasses: coffer validate applies the same
// limits as a Mount and coffer-controller sync, with the same messages.
func TestValidateRefusesHostileClasses(t *testing.T) {
	for name, c := range hostile.Classes() {
		t.Run(name, func(t *testing.T) {
			manifest, err := yaml.Marshal(map[string]any{
				"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
				"metadata": map[string]any{"name": "app", "namespace": "team"},
				"spec":     map[string]any{"provider": "aws", "parameters": c.Parameters},
			})
			if err != nil {
				t.Fatal(err)
			}
			code, out, _ := run(t, "validate", writeFile(t, "spc.yaml", string(manifest)))
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			for _, w := range c.Want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%.600s", w, out)
				}
			}
		})
	}
}
