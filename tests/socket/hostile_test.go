package socket_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coffer-csi/coffer/internal/hostile"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/wiring"
)

// TestHostileClassesRefused: through the real socket, every hostile class
// of the corpus (the syncSecrets ones are coffer-controller sync's: a Mount ignores
// syncSecrets) is refused as invalid input naming the limit, and the
// provider keeps serving: a benign mount afterwards succeeds.
func TestHostileClassesRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{config: func(c *wiring.Config) { c.Limits.MaxAttributesBytes = 1 << 20 }})
	h.fake.PutSecretString(primary, "benign", "v")
	for name, c := range hostile.Classes() {
		if _, ok := c.Parameters[spc.KeySyncSecrets]; ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := h.mount(t, c.Parameters)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Mount = %.300v, want InvalidArgument", err)
			}
			for _, w := range c.Want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %.400s", w, err)
				}
			}
		})
	}
	if _, err := h.mount(t, map[string]string{"objects": "- {objectName: benign, objectType: secretsmanager}"}); err != nil {
		t.Fatalf("benign mount after the attacks: %v", err)
	}
}
