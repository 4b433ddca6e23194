package secretsync

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/coffer-csi/coffer/provider/spc"
)

// SPCResource is the SecretProviderClass resource, read through the dynamic
// client (coffer does not import the driver's API packages).
var SPCResource = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}

// SPCFromUnstructured reads the fields sync needs from a SecretProviderClass
// object.
func SPCFromUnstructured(u *unstructured.Unstructured) (*SPC, error) {
	o := &SPC{
		Namespace:   u.GetNamespace(),
		Name:        u.GetName(),
		UID:         u.GetUID(),
		Generation:  u.GetGeneration(),
		Annotations: u.GetAnnotations(),
		Parameters:  map[string]string{},
	}
	o.Provider, _, _ = unstructured.NestedString(u.Object, "spec", "provider")
	params, _, err := unstructured.NestedMap(u.Object, "spec", "parameters")
	if err != nil {
		return nil, fmt.Errorf("SecretProviderClass %s/%s: spec.parameters is not a map: %w", o.Namespace, o.Name, err)
	}
	for k, v := range params {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("SecretProviderClass %s/%s: spec.parameters.%s is not a string", o.Namespace, o.Name, k)
		}
		o.Parameters[k] = s
	}
	return o, nil
}

// Declares reports whether the class declares Secrets to sync.
func (o *SPC) Declares() bool { return o.Parameters[spc.KeySyncSecrets] != "" }

// fetchKeys are the parameters that decide what a class fetches and as
// whom: if a mount's attributes agree with the class on all of them, the
// mount's files are the class's files.
var fetchKeys = []string{
	spc.KeyObjects, spc.KeyRegion, spc.KeyFailoverRegion, spc.KeyPathTranslation,
	spc.KeyUsePodIdentity, spc.KeyPreferredAddressType, spc.KeyAssumeRoleARN, spc.KeyAssumeRoleExternalID,
}

// driverAttrPrefix marks the attributes the driver adds about the pod.
const driverAttrPrefix = "csi.storage.k8s.io/"

// Config validates the class's own parameters (never a pod's overrides) for
// the workload described by pod, of which only the driver's attributes
// (csi.storage.k8s.io/...: pod identity and ServiceAccount tokens) count.
func (o *SPC) Config(ctx context.Context, pod map[string]string, opts ConfigOptions) (*spc.Config, error) {
	attrs := make(map[string]string, len(o.Parameters)+len(pod)+1)
	for k, v := range o.Parameters {
		attrs[k] = v
	}
	for k, v := range pod {
		if strings.HasPrefix(k, driverAttrPrefix) {
			attrs[k] = v
		}
	}
	attrs[spc.AttrSPCName] = o.Name
	parse := spc.Options{RequireRegion: true, MaxObjects: opts.MaxObjects}
	if o.Parameters[spc.KeyRegion] == "" && opts.DefaultRegion != nil {
		region, err := opts.DefaultRegion(ctx)
		if err != nil {
			return nil, err
		}
		parse.DefaultRegion = region
	}
	return spc.Parse(attrs, parse)
}

// ConfigOptions carry the provider's defaults into SPC.Config.
type ConfigOptions struct {
	// DefaultRegion gives the region of classes that name none.
	DefaultRegion func(context.Context) (string, error)
	MaxObjects    int
}
