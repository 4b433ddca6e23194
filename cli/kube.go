package cli

import (
	"k8s.io/client-go/rest"

	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/version"
)

// restConfig is the Kubernetes API configuration: in-cluster by default,
// or a kubeconfig file.
func restConfig(kubeconfig string) (*rest.Config, error) {
	return kube.Config(kubeconfig, "coffer/"+version.Version)
}
