package spc_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/internal/hostile"
	"github.com/coffer-csi/coffer/provider/spc"
)

// maxRefusalAlloc bounds what refusing one hostile class may allocate:
// YAML parsing of at most spc.MaxClassBytes, never the hundreds of
// megabytes the attacks reached before the limits.
const maxRefusalAlloc = 64 << 20

// TestLimitsRefuseHostileClasses: every attack that the mount path's
// parser refuses (the rest are syncSecrets attacks: see secretsync) is
// refused with a message naming the field and the limit, allocating a
// bounded amount.
func TestLimitsRefuseHostileClasses(t *testing.T) {
	for name, c := range hostile.Classes() {
		if _, ok := c.Parameters[spc.KeySyncSecrets]; ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := spc.Parse(c.Parameters, spc.Options{})
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("Parse accepted the class")
			}
			for _, w := range c.Want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %.400s", w, err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %.400q", err)
			}
			if len(err.Error()) > 64<<10 {
				t.Errorf("error is %d bytes, over 64 KiB", len(err.Error()))
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > maxRefusalAlloc {
				t.Errorf("allocated %d bytes, over %d", got, maxRefusalAlloc)
			}
		})
	}
}

// TestClassSizeLimit: the limit counts keys and values, the pod's
// volumeAttributes too, but not the ServiceAccount tokens the driver adds;
// a class over it is refused before its YAML is read.
func TestClassSizeLimit(t *testing.T) {
	base := map[string]string{"region": "us-east-1", "objects": "- {objectName: a, objectType: secretsmanager}"}
	size := len("region") + len("us-east-1") + len("objects") + len(base["objects"])
	tests := map[string]struct {
		extra   map[string]string
		wantErr bool
	}{
		"at the limit":                 {map[string]string{"pad": strings.Repeat("x", spc.MaxClassBytes-size-len("pad"))}, false},
		"one over":                     {map[string]string{"pad": strings.Repeat("x", spc.MaxClassBytes-size-len("pad")+1)}, true},
		"tokens do not count":          {map[string]string{spc.AttrTokens: strings.Repeat("x", spc.MaxClassBytes)}, false},
		"a volumeAttribute counts":     {map[string]string{"foo": strings.Repeat("x", spc.MaxClassBytes)}, true},
		"unparseable YAML is not read": {map[string]string{"objects": strings.Repeat("[", spc.MaxClassBytes)}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			attrs := map[string]string{}
			for k, v := range base {
				attrs[k] = v
			}
			for k, v := range tc.extra {
				attrs[k] = v
			}
			_, err := spc.Parse(attrs, spc.Options{})
			if got := err != nil; got != tc.wantErr {
				t.Fatalf("Parse = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !strings.Contains(err.Error(), "over the limit of 262144; split the objects") {
				t.Errorf("error = %v, want the size limit and its fix", err)
			}
		})
	}
}
