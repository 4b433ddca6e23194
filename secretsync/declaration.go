// Package secretsync creates, refreshes and cleans up native Kubernetes
// Secrets declared by a SecretProviderClass's syncSecrets parameter, with
// External Secrets Operator's semantics (creation and deletion policies,
// templates, extract-all). One engine serves two triggers: the provider
// after each successful mount (MountTrigger), and a controller that needs
// no pods (Controller).
//
// Secrets are the product: no value fetched from AWS ever reaches a log
// line, an error, an event, a status or an annotation.
package secretsync

import (
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/internal/yamlcheck"
	"github.com/coffer-csi/coffer/provider/spc"
)

// CreationPolicy says whether coffer creates the Secret and who owns it.
type CreationPolicy string

const (
	// Owner: coffer creates the Secret, owned by the SecretProviderClass
	// (garbage-collected with it). The default.
	Owner CreationPolicy = "Owner"
	// Orphan: coffer creates the Secret without an owner; it stays when the
	// SecretProviderClass goes.
	Orphan CreationPolicy = "Orphan"
	// Merge: coffer adds its keys to an existing Secret that opts in with
	// the AnnotationAllowMerge annotation; it never creates one.
	Merge CreationPolicy = "Merge"
)

// DeletionPolicy says what happens when every AWS entry a Secret reads is
// gone.
type DeletionPolicy string

const (
	// Retain keeps the Secret as it is (the default).
	Retain DeletionPolicy = "Retain"
	// Delete deletes the Secret: a confirmed "not found" is not an error.
	Delete DeletionPolicy = "Delete"
)

// Decoding is how a value is decoded before it becomes a Secret value.
type Decoding string

const (
	DecodeNone      Decoding = "none"
	DecodeBase64    Decoding = "base64"
	DecodeBase64URL Decoding = "base64url"
)

// MergePolicy says how template output combines with data and dataFrom.
type MergePolicy string

const (
	// Replace: the Secret holds only the template's keys (the default, as
	// in ExternalSecret).
	Replace MergePolicy = "Replace"
	// MergeData: the Secret holds the data and dataFrom keys plus the
	// template's, which win on a clash.
	MergeData MergePolicy = "Merge"
)

// DefaultRefreshInterval is how often the controller re-reads AWS when an
// entry does not say.
const DefaultRefreshInterval = time.Hour

// MinRefreshInterval keeps a typo ("1ms") from hammering AWS.
const MinRefreshInterval = time.Second

// Secret is one validated entry of syncSecrets.
type Secret struct {
	// Index is the entry's position in syncSecrets.
	Index int
	Name  string
	// Type is the Secret type; TypeSet says the declaration names one
	// (with Merge, an unset type means "whatever the Secret has").
	Type           corev1.SecretType
	TypeSet        bool
	Labels         map[string]string
	Annotations    map[string]string
	Immutable      bool
	CreationPolicy CreationPolicy
	DeletionPolicy DeletionPolicy
	Data           []DataEntry
	DataFrom       []ExtractEntry
	Template       *Template
	// RefreshInterval is the controller's period; 0 means only when the
	// declaration changes.
	RefreshInterval time.Duration
	// ServiceAccountName is the identity that fills the Secret: the
	// controller reads AWS as it, and only its pods sync the entry at
	// mount. An entry without one is synced by no one.
	ServiceAccountName string
}

// Describe names the entry in messages: its position and Secret name.
func (s *Secret) Describe() string {
	return describeEntry(s.Index, s.Name)
}

func describeEntry(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("syncSecrets[%d]", i)
	}
	return fmt.Sprintf("syncSecrets[%d] (%s)", i, yamlcheck.Name(name))
}

// Source is a file, or a directory of files, produced by the
// SecretProviderClass's objects.
type Source struct {
	// Ref is the reference as written in the declaration.
	Ref string
	// Path is the file it resolved to, or the directory.
	Path string
	// Dir says Path is the directory of an object whose files are named
	// from AWS (a path or filters object, or expandJSON).
	Dir bool
	// Object is the object that produces the file.
	Object *spc.Object
}

// DataEntry maps one Secret key to one file.
type DataEntry struct {
	Key      string
	Source   Source
	Decoding Decoding
}

// ExtractEntry makes every top-level key of a JSON file a Secret key.
type ExtractEntry struct {
	Source   Source
	Decoding Decoding
}

// Template renders Secret values with Go text/template over the values of
// data and dataFrom.
type Template struct {
	MergePolicy MergePolicy
	// Keys are the template's Secret keys, sorted.
	Keys  []string
	texts map[string]string
	tmpls map[string]*tmpl.Template
}

// Objects returns the objects the entry reads, in object order.
func (s *Secret) Objects() []*spc.Object {
	seen := map[int]*spc.Object{}
	for _, d := range s.Data {
		seen[d.Source.Object.Index] = d.Source.Object
	}
	for _, d := range s.DataFrom {
		seen[d.Source.Object.Index] = d.Source.Object
	}
	out := make([]*spc.Object, 0, len(seen))
	for _, o := range seen {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}
