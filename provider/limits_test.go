package provider_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/internal/hostile"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/spc"
)

// TestMountRefusesHostileClasses: a Mount applies the same limits as
// coffer-controller sync and coffer validate, refusing the class as invalid input
// (before any identity or AWS call) with the same messages. The
// syncSecrets attacks are coffer-controller sync's: a Mount ignores syncSecrets.
func TestMountRefusesHostileClasses(t *testing.T) {
	m, _ := nodeMounter(t)
	for name, c := range hostile.Classes() {
		if _, ok := c.Parameters[spc.KeySyncSecrets]; ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			class := map[string]string{}
			for k, v := range c.Parameters {
				class[k] = v
			}
			_, err := mountClass(t, m, class, nil)
			var input *provider.InputError
			if !errors.As(err, &input) {
				t.Fatalf("Mount = %.300v, want an InputError", err)
			}
			for _, w := range c.Want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %.400s", w, err)
				}
			}
		})
	}
}
