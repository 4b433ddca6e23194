package cli

import (
	"k8s.io/client-go/rest"

	"github.com/coffer-csi/coffer/internal/kube"
	"github.com/coffer-csi/coffer/internal/version"
)

// kubeClient connects to the Kubernetes API: in-cluster by default, or
// through a kubeconfig file.
func kubeClient(kubeconfig string) (*kube.Client, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kube.New(cfg)
}

// restConfig is the Kubernetes API configuration: in-cluster by default,
// or a kubeconfig file.
func restConfig(kubeconfig string) (*rest.Config, error) {
	return kube.Config(kubeconfig, "coffer/"+version.Version)
}
