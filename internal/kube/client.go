// Package kube is coffer's Kubernetes API client: the typed clients of the
// few resources coffer reads and writes, on client-go's REST client and a
// scheme that registers only their API groups.
//
// Why not client-go's clientset: it, every typed client generated in it,
// and client-go's leader election (through its informers) import
// k8s.io/client-go/kubernetes/scheme, which registers every API group of
// Kubernetes at start; its generic typed client (gentype) and event
// recorder (tools/record) link its fake API server and the OpenAPI
// libraries. Linked together with text/template (which cobra's
// help and coffer's templates use, and which makes the linker keep every
// exported method of every type it reaches), that made coffer's binary
// 62 MB instead of 36 MB, and most of the difference was paged into
// every DaemonSet pod's memory. So the node's binary (cmd/coffer) links
// this package and none of those (cmd/coffer: TestBinaryLinksNoClientset);
// the controller's (cmd/coffer-controller), one or two replicas, also
// links client-go's Lease election and event recorder (cli/controller),
// and has no election here. See docs/architecture.md.
package kube

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The interfaces below are what coffer's packages depend on. client-go's
// generated typed clients (and their fakes, which tests use) have the same
// methods, so the kubetest package adapts a fake clientset to them.

// SecretInterface reads and writes the Secrets of one namespace.
type SecretInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
	Create(ctx context.Context, secret *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Secret, error)
}

// SecretsGetter gives the Secrets of a namespace.
type SecretsGetter interface {
	Secrets(namespace string) SecretInterface
}

// ServiceAccountInterface reads the ServiceAccounts of one namespace and
// requests their tokens.
type ServiceAccountInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ServiceAccount, error)
	CreateToken(ctx context.Context, serviceAccountName string, tokenRequest *authenticationv1.TokenRequest, opts metav1.CreateOptions) (*authenticationv1.TokenRequest, error)
}

// ServiceAccountsGetter gives the ServiceAccounts of a namespace.
type ServiceAccountsGetter interface {
	ServiceAccounts(namespace string) ServiceAccountInterface
}

// NodeInterface reads Nodes.
type NodeInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Node, error)
}

// NodesGetter gives the Nodes.
type NodesGetter interface {
	Nodes() NodeInterface
}

// EventInterface writes the Events of one namespace.
type EventInterface interface {
	Create(ctx context.Context, event *corev1.Event, opts metav1.CreateOptions) (*corev1.Event, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Event, error)
}

// EventsGetter gives the Events of a namespace.
type EventsGetter interface {
	Events(namespace string) EventInterface
}

// ConfigMapInterface reads, watches and writes the ConfigMaps of one
// namespace (the change ledger: its consumer writes it, every node
// watches it).
type ConfigMapInterface interface {
	ListWatcher[*corev1.ConfigMapList]
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error)
	Create(ctx context.Context, cm *corev1.ConfigMap, opts metav1.CreateOptions) (*corev1.ConfigMap, error)
	Update(ctx context.Context, cm *corev1.ConfigMap, opts metav1.UpdateOptions) (*corev1.ConfigMap, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// ConfigMapsGetter gives the ConfigMaps of a namespace.
type ConfigMapsGetter interface {
	ConfigMaps(namespace string) ConfigMapInterface
}

// WorkloadInterface reads, watches and patches the workloads of one kind
// in one namespace (all namespaces for ""), e.g. their pod templates.
type WorkloadInterface[T, L runtime.Object] interface {
	ListWatcher[L]
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// Interface is everything coffer uses of the Kubernetes API through typed
// clients (SecretProviderClasses and the driver's objects are read with the
// dynamic client).
type Interface interface {
	SecretsGetter
	ServiceAccountsGetter
	NodesGetter
	EventsGetter
	ConfigMapsGetter
	Workloads
	// RESTClient reaches the core API group and absolute paths such as
	// /openid/v1/jwks.
	RESTClient() rest.Interface
}

// Workloads gives the apps workloads of a namespace.
type Workloads interface {
	Deployments(namespace string) WorkloadInterface[*appsv1.Deployment, *appsv1.DeploymentList]
	StatefulSets(namespace string) WorkloadInterface[*appsv1.StatefulSet, *appsv1.StatefulSetList]
	DaemonSets(namespace string) WorkloadInterface[*appsv1.DaemonSet, *appsv1.DaemonSetList]
}

// Scheme registers the API groups coffer's typed clients use, and nothing
// else.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, authenticationv1.AddToScheme, appsv1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("registering API types: %w", err)
		}
	}
	return s, nil
}

// Client is the Interface over a real API server.
type Client struct {
	scheme     *runtime.Scheme
	params     runtime.ParameterCodec
	core, apps rest.Interface
}

var _ Interface = (*Client)(nil)

// New connects to the API server cfg describes.
func New(cfg *rest.Config) (*Client, error) {
	s, err := Scheme()
	if err != nil {
		return nil, err
	}
	codecs := serializer.NewCodecFactory(s)
	client := func(apiPath string, gv *schema.GroupVersion) (rest.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.APIPath = apiPath
		c.GroupVersion = gv
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		return rest.RESTClientFor(c)
	}
	k := &Client{scheme: s, params: runtime.NewParameterCodec(s)}
	if k.core, err = client("/api", &corev1.SchemeGroupVersion); err != nil {
		return nil, fmt.Errorf("the Kubernetes API client: %w", err)
	}
	if k.apps, err = client("/apis", &appsv1.SchemeGroupVersion); err != nil {
		return nil, fmt.Errorf("the Kubernetes API client: %w", err)
	}
	return k, nil
}

// Scheme is the scheme the client decodes with (Events name objects of its
// kinds).
func (k *Client) Scheme() *runtime.Scheme { return k.scheme }

// RESTClient reaches the core API group and absolute paths.
func (k *Client) RESTClient() rest.Interface { return k.core }

// Secrets of namespace.
func (k *Client) Secrets(namespace string) SecretInterface {
	return typed[*corev1.Secret]{resource: "secrets", client: k.core, params: k.params, namespace: namespace, newObject: func() *corev1.Secret { return &corev1.Secret{} }}
}

// Nodes of the cluster.
func (k *Client) Nodes() NodeInterface {
	return typed[*corev1.Node]{resource: "nodes", client: k.core, params: k.params, namespace: "", newObject: func() *corev1.Node { return &corev1.Node{} }}
}

// Events of namespace.
func (k *Client) Events(namespace string) EventInterface {
	return typed[*corev1.Event]{resource: "events", client: k.core, params: k.params, namespace: namespace, newObject: func() *corev1.Event { return &corev1.Event{} }}
}

// ConfigMaps of namespace.
func (k *Client) ConfigMaps(namespace string) ConfigMapInterface {
	return typedList[*corev1.ConfigMap, *corev1.ConfigMapList]{
		typed:   typed[*corev1.ConfigMap]{resource: "configmaps", client: k.core, params: k.params, namespace: namespace, newObject: func() *corev1.ConfigMap { return &corev1.ConfigMap{} }},
		newList: func() *corev1.ConfigMapList { return &corev1.ConfigMapList{} },
	}
}

// Deployments of namespace.
func (k *Client) Deployments(namespace string) WorkloadInterface[*appsv1.Deployment, *appsv1.DeploymentList] {
	return typedList[*appsv1.Deployment, *appsv1.DeploymentList]{
		typed:   typed[*appsv1.Deployment]{resource: "deployments", client: k.apps, params: k.params, namespace: namespace, newObject: func() *appsv1.Deployment { return &appsv1.Deployment{} }},
		newList: func() *appsv1.DeploymentList { return &appsv1.DeploymentList{} },
	}
}

// StatefulSets of namespace.
func (k *Client) StatefulSets(namespace string) WorkloadInterface[*appsv1.StatefulSet, *appsv1.StatefulSetList] {
	return typedList[*appsv1.StatefulSet, *appsv1.StatefulSetList]{
		typed:   typed[*appsv1.StatefulSet]{resource: "statefulsets", client: k.apps, params: k.params, namespace: namespace, newObject: func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} }},
		newList: func() *appsv1.StatefulSetList { return &appsv1.StatefulSetList{} },
	}
}

// DaemonSets of namespace.
func (k *Client) DaemonSets(namespace string) WorkloadInterface[*appsv1.DaemonSet, *appsv1.DaemonSetList] {
	return typedList[*appsv1.DaemonSet, *appsv1.DaemonSetList]{
		typed:   typed[*appsv1.DaemonSet]{resource: "daemonsets", client: k.apps, params: k.params, namespace: namespace, newObject: func() *appsv1.DaemonSet { return &appsv1.DaemonSet{} }},
		newList: func() *appsv1.DaemonSetList { return &appsv1.DaemonSetList{} },
	}
}

// ServiceAccounts of namespace.
func (k *Client) ServiceAccounts(namespace string) ServiceAccountInterface {
	return serviceAccounts{typed[*corev1.ServiceAccount]{resource: "serviceaccounts", client: k.core, params: k.params, namespace: namespace, newObject: func() *corev1.ServiceAccount { return &corev1.ServiceAccount{} }}}
}

type serviceAccounts struct {
	typed[*corev1.ServiceAccount]
}

// CreateToken requests a token for a ServiceAccount (its token subresource),
// as client-go's typed client does.
func (s serviceAccounts) CreateToken(ctx context.Context, name string, tr *authenticationv1.TokenRequest, opts metav1.CreateOptions) (*authenticationv1.TokenRequest, error) {
	out := &authenticationv1.TokenRequest{}
	err := s.client.Post().Namespace(s.namespace).Resource("serviceaccounts").Name(name).SubResource("token").
		VersionedParams(&opts, s.params).Body(tr).Do(ctx).Into(out)
	return out, err
}

// Config is the API server configuration: in-cluster by default, or a
// kubeconfig file. userAgent names coffer and its version.
func Config(kubeconfig, userAgent string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to the Kubernetes API (in-cluster, or --kubeconfig): %w", err)
	}
	// Steady-state mounts make no API calls (lookups are cached); these
	// bound what a burst of new ServiceAccounts can send.
	cfg.QPS, cfg.Burst = 20, 40
	cfg.UserAgent = userAgent
	return cfg, nil
}
