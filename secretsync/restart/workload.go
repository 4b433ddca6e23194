package restart

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/coffer-csi/coffer/secretsync"
)

const (
	// AnnotationRestartOn, on a Deployment, StatefulSet or DaemonSet, opts
	// it in: "true" follows every SecretProviderClass its pods mount and
	// every Secret they consume that coffer syncs; a comma-separated list
	// of secretproviderclass/NAME and secret/NAME follows those only.
	AnnotationRestartOn = secretsync.Domain + "/restart-on-rotation"
	// AnnotationRestartedAt is the pod-template annotation a restart sets
	// (as kubectl rollout restart sets kubectl.kubernetes.io/restartedAt):
	// when, in RFC 3339.
	AnnotationRestartedAt = secretsync.Domain + "/restarted-at"
	// AnnotationRestartedFor is the pod-template annotation naming what
	// the last restart was for: object ids and versions, Secret names.
	AnnotationRestartedFor = secretsync.Domain + "/restarted-for"

	// csiDriver is the Secrets Store CSI Driver's name in pod volumes.
	csiDriver = "secrets-store.csi.k8s.io"
	// podTemplateHash is the label the Deployment controller sets on the
	// pods (and ReplicaSets) of one template.
	podTemplateHash = "pod-template-hash"
)

// Kinds restarted, as in the metric's kind label.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

// Follow is what a workload follows.
type Follow struct {
	// All follows everything the pod template mounts and consumes.
	All bool
	// Classes and Secrets are named by the annotation (with All: found in
	// the template).
	Classes, Secrets map[string]bool
}

// ParseFollow reads the opt-in annotation's value. ok is false when the
// workload does not opt in (absent, empty, "false").
func ParseFollow(value string) (f Follow, ok bool, err error) {
	value = strings.TrimSpace(value)
	switch value {
	case "", "false":
		return Follow{}, false, nil
	case "true":
		return Follow{All: true}, true, nil
	}
	f = Follow{Classes: map[string]bool{}, Secrets: map[string]bool{}}
	var bad []string
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		kind, name, _ := strings.Cut(item, "/")
		if item == "" || len(validation.IsDNS1123Subdomain(name)) > 0 {
			bad = append(bad, quoteShort(item))
			continue
		}
		switch kind {
		case "secretproviderclass":
			f.Classes[name] = true
		case "secret":
			f.Secrets[name] = true
		default:
			bad = append(bad, quoteShort(item))
		}
	}
	if len(bad) > 0 {
		// The value is the workload author's: name a few of its items,
		// shortened, so the event stays small.
		more := ""
		if len(bad) > maxBadItems {
			more = fmt.Sprintf(" and %d more", len(bad)-maxBadItems)
			bad = bad[:maxBadItems]
		}
		return Follow{}, false, fmt.Errorf("annotation %s: %s%s not understood; use \"true\" (everything the pods mount or consume) or a comma-separated list of secretproviderclass/NAME and secret/NAME", AnnotationRestartOn, strings.Join(bad, ", "), more)
	}
	return f, true, nil
}

// maxBadItems and maxItemLen bound what an error quotes of the annotation.
const (
	maxBadItems = 3
	maxItemLen  = 64
)

func quoteShort(item string) string {
	if len(item) > maxItemLen {
		return fmt.Sprintf("%q...", strings.ToValidUTF8(item[:maxItemLen], ""))
	}
	return fmt.Sprintf("%q", item)
}

// Resolve fills the classes and Secrets of a Follow that follows all from
// the pod template: its CSI volumes of the driver, and the Secrets its
// volumes, projected volumes, env and envFrom name.
func (f Follow) Resolve(tmpl *corev1.PodSpec) Follow {
	if !f.All {
		return f
	}
	out := Follow{All: true, Classes: map[string]bool{}, Secrets: map[string]bool{}}
	for _, v := range tmpl.Volumes {
		switch {
		case v.CSI != nil && v.CSI.Driver == csiDriver && v.CSI.VolumeAttributes["secretProviderClass"] != "":
			out.Classes[v.CSI.VolumeAttributes["secretProviderClass"]] = true
		case v.Secret != nil && v.Secret.SecretName != "":
			out.Secrets[v.Secret.SecretName] = true
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && src.Secret.Name != "" {
					out.Secrets[src.Secret.Name] = true
				}
			}
		}
	}
	containers := append(append([]corev1.Container{}, tmpl.InitContainers...), tmpl.Containers...)
	for _, c := range containers {
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil && e.SecretRef.Name != "" {
				out.Secrets[e.SecretRef.Name] = true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "" {
				out.Secrets[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
	}
	return out
}

// Describe lists what is followed, for logs.
func (f Follow) Describe() string {
	var items []string
	for c := range f.Classes {
		items = append(items, "secretproviderclass/"+c)
	}
	for s := range f.Secrets {
		items = append(items, "secret/"+s)
	}
	sort.Strings(items)
	return strings.Join(items, ",")
}

// Key names a workload in the work queue: Kind/namespace/name.
func Key(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// SplitKey is Key's inverse.
func SplitKey(key string) (kind, namespace, name string, ok bool) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// OwnerKey is the workload a pod belongs to, from its controller reference
// (and, for a Deployment's ReplicaSet, the pod-template-hash the
// Deployment controller appends to the ReplicaSet's name); "" for others.
func OwnerKey(namespace string, owner *OwnerRef, labels map[string]string) string {
	if owner == nil {
		return ""
	}
	switch owner.Kind {
	case KindStatefulSet, KindDaemonSet:
		return Key(owner.Kind, namespace, owner.Name)
	case "ReplicaSet":
		hash := labels[podTemplateHash]
		if name, ok := strings.CutSuffix(owner.Name, "-"+hash); ok && hash != "" && name != "" {
			return Key(KindDeployment, namespace, name)
		}
	}
	return ""
}

// OwnerRef is a pod's controller reference, in the apps group.
type OwnerRef struct{ Kind, Name string }
