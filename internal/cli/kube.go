package cli

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/coffer-csi/coffer/internal/version"
)

// kubeClient connects to the Kubernetes API: in-cluster by default, or
// through a kubeconfig file.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// restConfig is the Kubernetes API configuration: in-cluster by default,
// or a kubeconfig file.
func restConfig(kubeconfig string) (*rest.Config, error) {
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
	cfg.UserAgent = "coffer/" + version.Version
	return cfg, nil
}
