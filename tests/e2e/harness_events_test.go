package e2e

import (
	"context"
	"errors"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/tests/harness"
)

// Change events (scenario_events_test.go): the queue and its objects are
// in eventsRegion, which no other scenario uses, so coffer serve, which
// runs with --events-ledger for the whole suite, answers every other
// scenario's mounts as without events (objects outside the ledger's
// coverage).
const (
	eventsRegion = "eu-west-3"
	eventsQueue  = "coffer-events"
	ledgerName   = "coffer-changes"
	eventsSA     = "coffer-events"
	eventsLease  = "coffer-events"
	// The consumer's IAM user: what the chart's IRSA role grants it.
	eventsKeyID  = "AKIAE2EEVENTS0000000"
	eventsSecret = "e2e-events-secret-access-key"
	// eventsSkew is coffer serve's --event-clock-skew: one machine, one clock.
	eventsSkew = 500 * time.Millisecond
)

// bootstrapChangeEvents grants what the chart grants with events on: coffer
// serve may read and watch the ledger's ConfigMap, and the consumer, under
// a ServiceAccount of its own, may hold its Lease and write that ConfigMap.
func (c *cluster) bootstrapChangeEvents(ctx context.Context) error {
	if err := c.namespacedRole(ctx, "coffer-events-ledger", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{ledgerName}, Verbs: []string{"get", "list", "watch"}},
	}, cofferSA); err != nil {
		return err
	}
	if _, err := c.kube.CoreV1().ServiceAccounts(cofferNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: eventsSA}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := c.namespacedRole(ctx, "coffer-events", []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{eventsLease}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{ledgerName}, Verbs: []string{"get", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}, eventsSA); err != nil {
		return err
	}
	var err error
	c.eventsKubeconfig, err = c.serviceAccountKubeconfig(ctx, eventsSA, "coffer-events.kubeconfig")
	return err
}

// startConsumer runs coffer-controller events as the chart's Deployment
// does (its own ServiceAccount, leader-elected in coffer's namespace), with
// the consumer's keys and a canary every second, logging to name.log; it
// returns once the
// consumer holds the Lease and published a ledger.
func (c *cluster) startConsumer(ctx context.Context, name string) (*process, error) {
	env := append(c.awsEnv(), "POD_NAMESPACE="+cofferNamespace, "AWS_REGION="+eventsRegion,
		"AWS_ACCESS_KEY_ID="+eventsKeyID, "AWS_SECRET_ACCESS_KEY="+eventsSecret)
	p, err := c.spawn(name, c.bins.controller, env,
		"events",
		"--queue-url="+c.fakeURL+"/123456789012/"+eventsQueue,
		"--kubeconfig="+c.eventsKubeconfig,
		"--canary-parameter=/coffer/canary",
		"--canary-secret=coffer/canary",
		"--canary-interval=1s",
		"--log-level=debug",
		"--leader-election-lease-duration=4s",
		"--leader-election-renew-deadline=3s",
		"--leader-election-retry-period=1s",
	)
	if err != nil {
		return nil, err
	}
	return p, harness.WaitReady(ctx, p, time.Minute, func(ctx context.Context) error {
		lease, err := c.kube.CoordinationV1().Leases(cofferNamespace).Get(ctx, eventsLease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return errors.New("the Lease has no holder")
		}
		cm, err := c.kube.CoreV1().ConfigMaps(cofferNamespace).Get(ctx, ledgerName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !strings.Contains(cm.Data["ledger.json"], `"version":1`) {
			return errors.New("the ledger is not published yet")
		}
		return nil
	})
}
