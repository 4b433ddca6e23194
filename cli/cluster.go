package cli

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/coffer-csi/coffer/wiring"
)

// registerCluster registers the flags serve and sync share about where
// coffer runs: the Kubernetes API, the node (for its region label), the
// default region and the AWS endpoints.
func registerCluster(fs *pflag.FlagSet, cfg *wiring.Config) {
	d := wiring.Defaults()
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes API (default: in-cluster configuration)")
	fs.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "the node coffer runs on, to read its topology.kubernetes.io/region label when no region is set (default $NODE_NAME)")
	fs.StringVar(&cfg.Region, "region", os.Getenv("AWS_REGION"), "region for SecretProviderClasses that name none (default $AWS_REGION)")
	fs.BoolVar(&cfg.AWS.FIPS, "fips", d.AWS.FIPS, "use FIPS endpoints for every AWS call")
	fs.BoolVar(&cfg.AWS.DualStack, "dual-stack", d.AWS.DualStack, "use dual-stack (IPv6) AWS endpoints")
}
