package secretsync

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/internal/hostile"
	"github.com/coffer-csi/coffer/provider/spc"
)

// TestLoadDeclarationRefusesHostileClasses: the controller's load path
// (the SecretProviderClass object as the informer lists it, through
// SPCFromUnstructured and loadDeclaration) refuses every attack as an
// invalid declaration, with a one-line message naming the field and the
// limit, allocating a bounded amount, and without crashing.
func TestLoadDeclarationRefusesHostileClasses(t *testing.T) {
	pod := map[string]string{spc.AttrPodNamespace: testNS, spc.AttrPodName: "sync-app"}
	for name, c := range hostile.Classes() {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			owner, err := SPCFromUnstructured(spcObject("app", c.Parameters))
			if err != nil {
				t.Fatal(err)
			}
			_, _, failure := loadDeclaration(context.Background(), owner, pod, ConfigOptions{})
			runtime.ReadMemStats(&after)
			if failure == nil {
				t.Fatal("the declaration loaded")
			}
			if failure.Reason != ReasonInvalidDeclaration {
				t.Errorf("reason %s, want %s", failure.Reason, ReasonInvalidDeclaration)
			}
			for _, w := range c.Want {
				if !strings.Contains(failure.Message, w) {
					t.Errorf("message lacks %q: %.400s", w, failure.Message)
				}
			}
			if strings.Contains(failure.Message, "\n") {
				t.Errorf("message spans lines: %.400q", failure.Message)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
				t.Errorf("allocated %d bytes, over 64 MiB", got)
			}
		})
	}
}
