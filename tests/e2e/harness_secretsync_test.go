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

// The Secret sync's RBAC, exactly as docs/secret-sync.md documents it: the suite
// fails if coffer needs more.
const (
	cofferSyncSA = "coffer-sync"
	// syncLease is the Lease coffer-controller sync replicas elect a leader with.
	syncLease = "coffer-sync"
	// restartDebounce is coffer-controller sync's --restart-debounce.
	restartDebounce = 3 * time.Second
)

var (
	// secretWrites: coffer reads its Secrets and creates, patches (server-
	// side apply) and deletes (deletionPolicy Delete) them.
	secretWrites = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "patch", "delete"}}
	eventWrites  = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}}
	// spcFinalizers: blockOwnerDeletion on Owner Secrets' owner references
	// (the apiserver runs OwnerReferencesPermissionEnforcement).
	spcFinalizers = rbacv1.PolicyRule{APIGroups: []string{"secrets-store.csi.x-k8s.io"}, Resources: []string{"secretproviderclasses/finalizers"}, Verbs: []string{"update"}}
	// secretWatch: coffer-controller sync watches Secrets' metadata, to retry an entry
	// waiting for its Secret to change as soon as it does.
	secretWatch = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list", "watch"}}
)

// bootstrapSecretSync grants what sync needs: to coffer serve (the mount
// trigger, --sync-secrets) on top of its own ClusterRole, and to coffer
// sync (the controller) under a ServiceAccount of its own.
func (c *cluster) bootstrapSecretSync(ctx context.Context) error {
	rbac := c.kube.RbacV1()
	bind := func(role, sa string) error {
		if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: cofferNamespace}},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
		return nil
	}
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "coffer-sync-at-mount"},
		Rules: []rbacv1.PolicyRule{
			secretWrites, eventWrites, spcFinalizers,
			{APIGroups: []string{"secrets-store.csi.x-k8s.io"}, Resources: []string{"secretproviderclasses"}, Verbs: []string{"get"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := bind("coffer-sync-at-mount", cofferSA); err != nil {
		return err
	}

	if _, err := c.kube.CoreV1().ServiceAccounts(cofferNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: cofferSyncSA}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "coffer-sync"},
		Rules: []rbacv1.PolicyRule{
			secretWrites, eventWrites, spcFinalizers, secretWatch,
			{APIGroups: []string{"secrets-store.csi.x-k8s.io"}, Resources: []string{"secretproviderclasses"}, Verbs: []string{"get", "list", "watch", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
			// --restart-workloads (scenario_rollout_test.go).
			{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"list", "watch", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"secrets-store.csi.x-k8s.io"}, Resources: []string{"secretproviderclasspodstatuses"}, Verbs: []string{"list", "watch"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := bind("coffer-sync", cofferSyncSA); err != nil {
		return err
	}
	if err := c.namespacedRole(ctx, "coffer-sync-leader-election",
		[]rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}}, cofferSyncSA); err != nil {
		return err
	}
	var err error
	c.cofferSyncKubeconfig, err = c.serviceAccountKubeconfig(ctx, cofferSyncSA, "coffer-sync.kubeconfig")
	return err
}

// startCofferSync runs the controller as a Deployment would: its own
// ServiceAccount, leader election in coffer's namespace.
func (c *cluster) startCofferSync(ctx context.Context) error {
	var err error
	c.cofferSync, err = c.spawn("coffer-sync", c.bins.controller, append(c.awsEnv(), "POD_NAMESPACE="+cofferNamespace),
		"sync",
		"--kubeconfig="+c.cofferSyncKubeconfig,
		"--region=",
		"--log-level=debug",
		"--leader-election-lease-duration=4s",
		"--leader-election-renew-deadline=3s",
		"--leader-election-retry-period=1s",
		"--restart-workloads",
		"--restart-debounce="+restartDebounce.String(),
	)
	if err != nil {
		return err
	}
	return harness.WaitReady(ctx, c.cofferSync, time.Minute, func(ctx context.Context) error {
		lease, err := c.kube.CoordinationV1().Leases(cofferNamespace).Get(ctx, syncLease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return errors.New("the Lease has no holder")
		}
		if !strings.Contains(c.cofferSync.LogSince(0), "secret sync controller started") {
			return errors.New(`coffer-controller sync has not logged "secret sync controller started"`)
		}
		return nil
	})
}
