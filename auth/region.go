package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/kube"
)

// RegionLabel is the well-known node label that carries the AWS region.
const RegionLabel = "topology.kubernetes.io/region"

// NodeRegion is the region for SecretProviderClasses that name none: the
// provider's configured region, else its node's region label, read once per
// process (a node does not change region).
type NodeRegion struct {
	// Configured is the --region flag or AWS_REGION.
	Configured string
	Client     kube.NodesGetter
	// NodeName is the provider's own node, from the downward API.
	NodeName string
	// RetryAfter spaces lookups after a failure (default 10s), so a
	// misconfigured node does not turn every mount into an API call.
	RetryAfter time.Duration
	// Clock is the time source of RetryAfter (nil: the real clock).
	Clock clock.PassiveClock

	mu      sync.Mutex
	region  string
	lastErr error
	lastTry time.Time
}

// Region returns the default region or an error that says how to set one.
func (n *NodeRegion) Region(ctx context.Context) (string, error) {
	if n.Configured != "" {
		return n.Configured, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.region != "" {
		return n.region, nil
	}
	retry := n.RetryAfter
	if retry <= 0 {
		retry = 10 * time.Second
	}
	clk := n.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	if n.lastErr != nil && clk.Since(n.lastTry) < retry {
		return "", n.lastErr
	}
	n.lastTry = clk.Now()
	n.region, n.lastErr = n.lookup(ctx)
	return n.region, n.lastErr
}

func (n *NodeRegion) lookup(ctx context.Context) (string, error) {
	const fix = "set region in the SecretProviderClass, or start coffer with --region (AWS_REGION)"
	if n.Client == nil || n.NodeName == "" {
		return "", &Error{Reason: ReasonConfig, Msg: "no region: " + fix + " (coffer cannot read its node's " + RegionLabel + " label without --node-name / NODE_NAME)"}
	}
	node, err := n.Client.Nodes().Get(ctx, n.NodeName, metav1.GetOptions{})
	if err != nil {
		return "", &Error{Reason: ReasonConfig, Msg: fmt.Sprintf("no region, and reading node %s's %s label failed; %s (RBAC: coffer needs get on nodes)", n.NodeName, RegionLabel, fix), Err: err}
	}
	region := node.Labels[RegionLabel]
	if region == "" {
		return "", &Error{Reason: ReasonConfig, Msg: fmt.Sprintf("no region: node %s has no %s label; %s", n.NodeName, RegionLabel, fix)}
	}
	return region, nil
}
