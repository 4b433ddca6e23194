package wiring

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

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
	// Config is what the clients were made from (nil with fakes): the
	// controller binary makes client-go's election and event recorder
	// from it, so that every client of a process is set up one way.
	Config *rest.Config
}

// Connect connects to the Kubernetes API: in-cluster, or through a
// kubeconfig file. It makes no request. It is the one place coffer's
// clients are set up (user agent, rate limits). The dynamic and metadata
// clients are made only when untyped says so (Secret sync reads
// SecretProviderClasses and Secrets' metadata through them): a node that
// only mounts never runs their code, which is memory paged into every
// DaemonSet pod (bench S1).
func Connect(kubeconfig string, untyped bool) (*Kubernetes, error) {
	rc, err := kube.Config(kubeconfig, "coffer/"+version.Version)
	if err != nil {
		return nil, err
	}
	kc, err := kube.New(rc)
	if err != nil {
		return nil, err
	}
	if !untyped {
		return &Kubernetes{Client: kc, Config: rc}, nil
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API's dynamic client: %w", err)
	}
	meta, err := metadata.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes API's metadata client: %w", err)
	}
	return &Kubernetes{Client: kc, Dynamic: dyn, Metadata: meta, Config: rc}, nil
}
