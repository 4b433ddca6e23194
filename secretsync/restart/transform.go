package restart

import (
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// The informers keep only what the controller reads: every cache holds
// objects of the whole cluster (or namespace).

// stripWorkload drops a workload's managed fields and status.
func stripWorkload(obj any) (any, error) {
	switch w := obj.(type) {
	case *appsv1.Deployment:
		w.ManagedFields, w.Status = nil, appsv1.DeploymentStatus{}
	case *appsv1.StatefulSet:
		w.ManagedFields, w.Status = nil, appsv1.StatefulSetStatus{}
	case *appsv1.DaemonSet:
		w.ManagedFields, w.Status = nil, appsv1.DaemonSetStatus{}
	}
	return obj, nil
}

// stripPod keeps a pod's name, uid, controller reference, its
// pod-template-hash label and restarted-at annotation.
func stripPod(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
	}}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		out.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	if h, ok := m.Labels[podTemplateHash]; ok {
		out.Labels = map[string]string{podTemplateHash: h}
	}
	if at, ok := m.Annotations[AnnotationRestartedAt]; ok {
		out.Annotations = map[string]string{AnnotationRestartedAt: at}
	}
	return out, nil
}

// mountStatus is what the controller keeps of a
// SecretProviderClassPodStatus.
type mountStatus struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Pod, Class string
	Mounted    bool
	// Versions by object id.
	Versions map[string]string
}

func (m *mountStatus) DeepCopyObject() runtime.Object {
	out := *m
	m.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Versions = copyMap(m.Versions)
	return &out
}

func stripSPCPS(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	m := &mountStatus{ObjectMeta: metav1.ObjectMeta{
		Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
	}, Versions: map[string]string{}}
	m.Pod, _, _ = unstructured.NestedString(u.Object, "status", "podName")
	m.Class, _, _ = unstructured.NestedString(u.Object, "status", "secretProviderClassName")
	m.Mounted, _, _ = unstructured.NestedBool(u.Object, "status", "mounted")
	objects, _, _ := unstructured.NestedSlice(u.Object, "status", "objects")
	for _, o := range objects {
		if om, ok := o.(map[string]any); ok {
			id, _ := om["id"].(string)
			v, _ := om["version"].(string)
			if id != "" {
				m.Versions[id] = v
			}
		}
	}
	return m, nil
}
