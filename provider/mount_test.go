package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/provider"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// regionSource is the node's default region, counting lookups.
type regionSource struct {
	region string
	err    error
	calls  atomic.Int32
}

func (r *regionSource) Region(context.Context) (string, error) {
	r.calls.Add(1)
	return r.region, r.err
}

// attributes are the workload's attributes with change applied, as JSON.
func attributes(t *testing.T, change func(map[string]string)) string {
	t.Helper()
	a := maps.Clone(workload)
	if change != nil {
		change(a)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// nodeMounter reads the AWS fake with one identity for everyone.
func nodeMounter(t *testing.T) (*provider.Mounter, *fakeaws.Server) {
	t.Helper()
	fake, ts := fakeaws.NewTestServer(t)
	fake.AddIdentity(fakeaws.AllowAll("AKIDNODE", "node-secret"))
	ids := auth.NodeCredentials{Credentials: fakeaws.AWSConfig(ts.URL, region, "AKIDNODE", "node-secret", "").Credentials}
	return newMounter(t, fake, ts.URL, ids), fake
}

func TestMountRequests(t *testing.T) {
	noRegion := func(a map[string]string) { delete(a, spc.KeyRegion) }
	tests := map[string]struct {
		attrs       func(t *testing.T) string
		permission  string
		region      *regionSource
		wantInput   bool   // an InputError, class invalid_config
		wantClass   string // otherwise
		wantInError string
		wantLookups int32
	}{
		"attributes over the limit": {
			attrs: func(t *testing.T) string {
				return attributes(t, func(a map[string]string) { a["padding"] = strings.Repeat("x", 4096) })
			},
			wantInput: true, wantInError: "--max-attributes-bytes",
		},
		"attributes not JSON": {
			attrs:     func(*testing.T) string { return "{" },
			wantInput: true,
		},
		"permission not a file mode": {
			permission: "4096",
			wantInput:  true, wantInError: "permission",
		},
		"class without objects": {
			attrs: func(t *testing.T) string {
				return attributes(t, func(a map[string]string) { delete(a, spc.KeyObjects) })
			},
			wantInput: true, wantInError: "objects",
		},
		"no region: the node's": {
			attrs:       func(t *testing.T) string { return attributes(t, noRegion) },
			region:      &regionSource{region: region},
			wantLookups: 1,
		},
		"a class naming its region never waits for the node's": {
			region: &regionSource{err: errors.New("the node has no region label")},
		},
		"no region, and the node's cannot be read": {
			attrs:     func(t *testing.T) string { return attributes(t, noRegion) },
			region:    &regionSource{err: errors.New("the node has no region label")},
			wantClass: "internal", wantInError: "no region label",
			wantLookups: 1,
		},
		"no region anywhere": {
			attrs:     func(t *testing.T) string { return attributes(t, noRegion) },
			region:    &regionSource{},
			wantInput: true, wantInError: "region", wantLookups: 1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m, _ := nodeMounter(t)
			m.MaxAttributesBytes = 2048
			if tc.region != nil {
				m.Region = tc.region
			}
			attrs := attributes(t, nil)
			if tc.attrs != nil {
				attrs = tc.attrs(t)
			}
			res, err := m.Mount(context.Background(), provider.Request{Attributes: attrs, Permission: tc.permission})
			if tc.wantInput {
				tc.wantClass = "invalid_config"
				if !provider.IsInputError(err) {
					t.Errorf("err = %v, want an input error", err)
				}
			}
			if got := provider.ErrorClass(err); got != tc.wantClass {
				t.Fatalf("class %q, want %q (err: %v)", got, tc.wantClass, err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantInError) {
				t.Errorf("err %q does not say %q", err, tc.wantInError)
			}
			if err == nil && len(res.Files) != 2 {
				t.Errorf("%d files, want 2", len(res.Files))
			}
			if tc.region != nil && tc.region.calls.Load() != tc.wantLookups {
				t.Errorf("%d region lookups, want %d", tc.region.calls.Load(), tc.wantLookups)
			}
		})
	}
}

// A successful mount counts the files that changed and tells AfterMount
// what it mounted, as whom; a mount missing one object returns nothing.
func TestMountResult(t *testing.T) {
	m, fake := nodeMounter(t)
	var after []provider.Mounted
	m.AfterMount = func(_ context.Context, mounted provider.Mounted) { after = append(after, mounted) }
	first, err := m.Mount(context.Background(), provider.Request{Attributes: attributes(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if first.Changed != 2 {
		t.Errorf("first mount changed %d files, want 2", first.Changed)
	}
	current := map[string]string{}
	for _, f := range first.Files {
		current[f.Path] = f.Version
	}
	current["db"] = "an older version"
	again, err := m.Mount(context.Background(), provider.Request{Attributes: attributes(t, nil), CurrentVersions: current})
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed != 1 {
		t.Errorf("remount changed %d files, want 1 (db)", again.Changed)
	}
	if len(after) != 2 {
		t.Fatalf("AfterMount called %d times, want 2", len(after))
	}
	a := after[1]
	if a.Identity.Key != "node" || a.Config.Pod.Name != workload[spc.AttrPodName] || len(a.Files) != 2 || a.Attributes[spc.AttrSPCName] != workload[spc.AttrSPCName] {
		t.Errorf("AfterMount got identity %q, pod %q, %d files, class %q", a.Identity.Key, a.Config.Pod.Name, len(a.Files), a.Attributes[spc.AttrSPCName])
	}

	fake.DeleteParameter(region, "/team/host")
	res, err := m.Mount(context.Background(), provider.Request{Attributes: attributes(t, nil), CurrentVersions: current})
	if res != nil || provider.ErrorClass(err) != "not_found" {
		t.Errorf("mount without its parameter: %v, %v; want no files, not_found", res, err)
	}
	if len(after) != 2 {
		t.Errorf("AfterMount called after a failed mount")
	}
}
