package restart

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestParseFollow(t *testing.T) {
	tests := map[string]struct {
		value            string
		optedIn, all     bool
		classes, secrets string
		err              string
	}{
		"absent":                     {value: ""},
		"false":                      {value: "false"},
		"true":                       {value: "true", optedIn: true, all: true},
		"a list":                     {value: "secretproviderclass/db, secret/app-db,secret/other", optedIn: true, classes: "db", secrets: "app-db,other"},
		"unknown kind":               {value: "configmap/x", err: `"configmap/x" not understood`},
		"no name":                    {value: "secret/", err: `"secret/" not understood`},
		"invalid name":               {value: "secret/Bad_Name", err: `"secret/Bad_Name"`},
		"empty item":                 {value: "secret/a,,secret/b", err: `"" not understood`},
		"yes is not true":            {value: "yes", err: `"yes" not understood`},
		"path in the name":           {value: "secret/a/b", err: `"secret/a/b"`},
		"many bad items, few quoted": {value: strings.Repeat("x,", 1000) + "y", err: `"x", "x", "x" and 998 more not understood`},
		"a long item, shortened":     {value: "secret/" + strings.Repeat("a", 300), err: `"secret/` + strings.Repeat("a", 57) + `"...`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, ok, err := ParseFollow(tc.value)
			if tc.err != "" {
				if err != nil && len(err.Error()) > 512 {
					t.Errorf("an error of %d bytes", len(err.Error()))
				}
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), AnnotationRestartOn) || ok {
					t.Fatalf("ParseFollow(%q) = %v, %v; want an error naming %s and %s", tc.value, ok, err, AnnotationRestartOn, tc.err)
				}
				return
			}
			if err != nil || ok != tc.optedIn || f.All != tc.all {
				t.Fatalf("ParseFollow(%q) = %+v, %v, %v", tc.value, f, ok, err)
			}
			if got := keysOf(f.Classes); got != tc.classes {
				t.Errorf("classes %q, want %q", got, tc.classes)
			}
			if got := keysOf(f.Secrets); got != tc.secrets {
				t.Errorf("secrets %q, want %q", got, tc.secrets)
			}
		})
	}
}

func keysOf(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func TestResolveFindsWhatTheTemplateUses(t *testing.T) {
	spec := &corev1.PodSpec{
		Volumes: []corev1.Volume{
			{Name: "a", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: csiDriver, VolumeAttributes: map[string]string{"secretProviderClass": "db"}}}},
			{Name: "b", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "other.csi", VolumeAttributes: map[string]string{"secretProviderClass": "not-ours"}}}},
			{Name: "c", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret"}}},
			{Name: "d", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "projected"}}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			}}}},
		},
		InitContainers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-env"}}}}}},
		Containers: []corev1.Container{{Env: []corev1.EnvVar{
			{Name: "P", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-key"}, Key: "k"}}},
			{Name: "C", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}},
		}}},
	}
	f := Follow{All: true}.Resolve(spec)
	if got := keysOf(f.Classes); got != "db" {
		t.Errorf("classes %q", got)
	}
	if got := keysOf(f.Secrets); got != "env-key,init-env,projected,vol-secret" {
		t.Errorf("secrets %q", got)
	}
	// A list is what it names, whatever the template uses.
	named := Follow{Classes: map[string]bool{"x": true}, Secrets: map[string]bool{}}
	if got := named.Resolve(spec); keysOf(got.Classes) != "x" || len(got.Secrets) != 0 {
		t.Errorf("a list resolved to %+v", got)
	}
}

func TestOwnerKey(t *testing.T) {
	tests := map[string]struct {
		owner  *OwnerRef
		labels map[string]string
		want   string
	}{
		"a Deployment's pod":            {&OwnerRef{"ReplicaSet", "web-5f7b9c8d4"}, map[string]string{podTemplateHash: "5f7b9c8d4"}, "Deployment/ns/web"},
		"a bare ReplicaSet's pod":       {&OwnerRef{"ReplicaSet", "web"}, nil, ""},
		"a hash that is not the suffix": {&OwnerRef{"ReplicaSet", "web-abc"}, map[string]string{podTemplateHash: "xyz"}, ""},
		"the hash alone":                {&OwnerRef{"ReplicaSet", "-abc"}, map[string]string{podTemplateHash: "abc"}, ""},
		"a StatefulSet's pod":           {&OwnerRef{"StatefulSet", "db"}, nil, "StatefulSet/ns/db"},
		"a DaemonSet's pod":             {&OwnerRef{"DaemonSet", "agent"}, nil, "DaemonSet/ns/agent"},
		"a Job's pod":                   {&OwnerRef{"Job", "x"}, nil, ""},
		"no owner":                      {nil, nil, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := OwnerKey("ns", tc.owner, tc.labels); got != tc.want {
				t.Errorf("OwnerKey = %q, want %q", got, tc.want)
			}
		})
	}
	if kind, ns, name, ok := SplitKey(Key("Deployment", "ns", "web")); !ok || kind != "Deployment" || ns != "ns" || name != "web" {
		t.Errorf("SplitKey: %s %s %s %v", kind, ns, name, ok)
	}
}

// The caches keep what the controller reads and nothing else: no label or
// annotation of anyone else's, and of a Secret nothing but its hash.
func TestTransformsKeepOnlyWhatIsRead(t *testing.T) {
	controller := true
	pod := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "web-1", Namespace: "ns", UID: "u1",
		Labels:      map[string]string{podTemplateHash: "h", "team": "canary-label"},
		Annotations: map[string]string{AnnotationRestartedAt: "t1", "note": "canary-annotation"},
		OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-h", Controller: &controller},
			{APIVersion: "v1", Kind: "ConfigMap", Name: "other"},
		},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "x"}},
	}}
	out, _ := stripPod(pod)
	p := out.(*metav1.PartialObjectMetadata)
	if len(p.Labels) != 1 || len(p.Annotations) != 1 || len(p.OwnerReferences) != 1 || p.ManagedFields != nil || p.Annotations[AnnotationRestartedAt] != "t1" {
		t.Errorf("pod kept %+v", p.ObjectMeta)
	}
	again, _ := stripPod(p)
	if again.(*metav1.PartialObjectMetadata).Labels[podTemplateHash] != "h" {
		t.Error("stripPod is not idempotent")
	}
	spcps := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "web-1-ns-db", "namespace": "ns"},
		"status": map[string]any{"podName": "web-1", "secretProviderClassName": "db", "mounted": true,
			"objects": []any{map[string]any{"id": "password", "version": "v2"}, map[string]any{"version": "no-id"}}},
	}}
	out, _ = stripSPCPS(spcps)
	m := out.(*mountStatus)
	if m.Pod != "web-1" || m.Class != "db" || !m.Mounted || len(m.Versions) != 1 || m.Versions["password"] != "v2" {
		t.Errorf("mount status %+v", m)
	}
	if cp := m.DeepCopyObject().(*mountStatus); cp.Versions["password"] != "v2" {
		t.Error("DeepCopyObject lost the versions")
	}
}
