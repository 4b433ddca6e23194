package spc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-csi/coffer/provider/spc"
)

// ascpSource is where the AWS provider's source tree is read from when
// present (COFFER_ASCP_SOURCE overrides it); the committed
// testdata/published-classes.yaml restates its classes for CI.
const ascpSource = "/work/shared/peers/secrets-store-csi-driver-provider-aws"

// ascpPlaceholders fills the placeholders of ASCP's test classes.
var ascpPlaceholders = strings.NewReplacer("${REGION}", "us-east-1", "${FAILOVERREGION}", "us-east-2", "${ACCOUNT_NUMBER}", "123456789012")

// TestPublishedClassesWithinLimits: no limit refuses a class that the AWS
// provider publishes (its README's examples, its examples directory and
// its integration test's class): each parses and checks as coffer
// validate would, and sits far below every limit.
func TestPublishedClassesWithinLimits(t *testing.T) {
	sources := map[string]string{"testdata/published-classes.yaml": ""}
	dir := os.Getenv("COFFER_ASCP_SOURCE")
	if dir == "" {
		dir = ascpSource
	}
	if _, err := os.Stat(dir); err == nil {
		files, _ := filepath.Glob(filepath.Join(dir, "examples", "*.yaml"))
		files = append(files, filepath.Join(dir, "tests", "BasicTestMountSPC.yaml"))
		for _, f := range files {
			sources[f] = ""
		}
	} else {
		t.Logf("ASCP source not found at %s: checking the restated classes only", dir)
	}
	checked := 0
	for path := range sources {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		manifests, err := spc.ReadManifests(strings.NewReader(ascpPlaceholders.Replace(string(raw))))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, m := range manifests {
			if m.Kind == "" {
				continue
			}
			checked++
			cfg, err := m.Check(spc.Options{DefaultRegion: "us-east-1"})
			if err != nil {
				t.Errorf("%s: %s: %v", path, m.Describe(), err)
				continue
			}
			size := 0
			for k, v := range m.Parameters {
				size += len(k) + len(v)
			}
			entries := 0
			for _, o := range cfg.Objects {
				entries += len(o.JMESPath)
				for _, e := range o.JMESPath {
					if len(e.Expression) > 64 {
						t.Errorf("%s: %s: a jmesPath of %d bytes", path, m.Describe(), len(e.Expression))
					}
				}
			}
			// Far below: a tenth of each limit at most.
			if size > spc.MaxClassBytes/10 || len(cfg.Objects) > spc.DefaultMaxObjects/10 || entries > spc.MaxJMESPathEntries/10 {
				t.Errorf("%s: %s: %d bytes, %d objects, %d jmesPath entries: near a limit", path, m.Describe(), size, len(cfg.Objects), entries)
			}
		}
	}
	if checked < 5 {
		t.Errorf("checked %d published classes, want at least the 5 restated ones", checked)
	}
	t.Logf("checked %d published classes", checked)
}
