package provider_test

import (
	"context"
	"errors"
	"testing"

	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/spc"
)

// MaxObjectBytes bounds each object FetchFiles renders, not their total.
func TestFetchFilesObjectBound(t *testing.T) {
	// The seeded values: db is 16 bytes, host 18.
	tests := map[string]struct {
		maxObjectBytes int
		wantFiles      int
		wantTooLarge   bool
	}{
		"the default: the driver's limit":        {0, 2, false},
		"each object within it, their total not": {18, 2, false},
		"an object over it":                      {17, 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, _ := nodeMounter(t)
			m.MaxObjectBytes = tc.maxObjectBytes
			cfg, err := spc.Parse(workload, spc.Options{RequireRegion: true})
			if err != nil {
				t.Fatal(err)
			}
			files, err := m.FetchFiles(context.Background(), cfg)
			var size *render.SizeError
			switch {
			case !tc.wantTooLarge && err != nil:
				t.Fatal(err)
			case tc.wantTooLarge && !errors.As(err, &size):
				t.Fatalf("err = %v, want a size error", err)
			case tc.wantTooLarge && (size.Limit != tc.maxObjectBytes || provider.ErrorClass(err) != "too_large"):
				t.Errorf("limit %d, class %q; want %d, too_large", size.Limit, provider.ErrorClass(err), tc.maxObjectBytes)
			}
			if len(files) != tc.wantFiles {
				t.Errorf("%d files, want %d", len(files), tc.wantFiles)
			}
		})
	}
}

// TestFetchFilesKeepsUnwrittenFiles: Secret sync reads the files of
// objects with writeFile: false, and renders no templated file.
func TestFetchFilesKeepsUnwrittenFiles(t *testing.T) {
	m, fake := nodeMounter(t)
	fake.PutSecretString(region, "app/db", `{"password":"`+canary+`"}`)
	cfg, err := spc.Parse(map[string]string{"region": region,
		"objects": "- {objectName: app/db, objectType: secretsmanager, objectAlias: db, writeFile: false}",
		"files":   "[{path: out, template: '{{ .db }}'}]"}, spc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := m.FetchFiles(context.Background(), cfg)
	if err != nil || len(files) != 1 || files[0].Path != "db" || !files[0].Unwritten {
		t.Fatalf("FetchFiles = %+v, %v; want the db file, marked unwritten", files, err)
	}
}
