// Package kubetest adapts a client-go clientset (in tests, the fake one)
// to kube.Interface, and gives controllers under test a work queue whose
// delays follow a fake clock (Queue). Only tests import it: it links
// client-go's clientset, which coffer's binary does not.
package kubetest

import (
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/coffer-csi/coffer/internal/kube"
)

// Wrap adapts cs.
func Wrap(cs kubernetes.Interface) kube.Interface { return clientset{cs} }

type clientset struct{ cs kubernetes.Interface }

// IsWatchListSemanticsUnSupported passes on what the wrapped clientset
// says of watch-list streams (the fake cannot send them), which informers
// ask the client their resources come from (kube.NewInformer).
func (c clientset) IsWatchListSemanticsUnSupported() bool {
	u, ok := c.cs.(interface{ IsWatchListSemanticsUnSupported() bool })
	return ok && u.IsWatchListSemanticsUnSupported()
}

func (c clientset) Secrets(ns string) kube.SecretInterface { return c.cs.CoreV1().Secrets(ns) }
func (c clientset) ServiceAccounts(ns string) kube.ServiceAccountInterface {
	return c.cs.CoreV1().ServiceAccounts(ns)
}
func (c clientset) Nodes() kube.NodeInterface            { return c.cs.CoreV1().Nodes() }
func (c clientset) Events(ns string) kube.EventInterface { return c.cs.CoreV1().Events(ns) }
func (c clientset) ConfigMaps(ns string) kube.ConfigMapInterface {
	return c.cs.CoreV1().ConfigMaps(ns)
}
func (c clientset) RESTClient() rest.Interface { return c.cs.CoreV1().RESTClient() }
func (c clientset) Deployments(ns string) kube.WorkloadInterface[*appsv1.Deployment, *appsv1.DeploymentList] {
	return c.cs.AppsV1().Deployments(ns)
}
func (c clientset) StatefulSets(ns string) kube.WorkloadInterface[*appsv1.StatefulSet, *appsv1.StatefulSetList] {
	return c.cs.AppsV1().StatefulSets(ns)
}
func (c clientset) DaemonSets(ns string) kube.WorkloadInterface[*appsv1.DaemonSet, *appsv1.DaemonSetList] {
	return c.cs.AppsV1().DaemonSets(ns)
}
