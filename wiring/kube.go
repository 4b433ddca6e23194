package wiring

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"

	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/version"
)

// Kubernetes is the API coffer talks to: typed clients of the few
// resources it uses, and the dynamic and metadata clients for
// SecretProviderClasses, the driver's objects and Secrets' metadata.
// Tests give client-go's fakes (kubetest.Wrap, the fake dynamic client).
type Kubernetes struct {
	Client   kube.Interface
	Dynamic  dynamic.Interface
	Metadata metadata.Interface
}

// Connect connects to the Kubernetes API: in-cluster, or through a
// kubeconfig file. It makes no request.
func Connect(kubeconfig string) (*Kubernetes, error) {
	rc, err := kube.Config(kubeconfig, "coffer/"+version.Version)
	if err != nil {
		return nil, err
	}
	kc, err := kube.New(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API's dynamic client: %w", err)
	}
	meta, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API's metadata client: %w", err)
	}
	return &Kubernetes{Client: kc, Dynamic: dyn, Metadata: meta}, nil
}
