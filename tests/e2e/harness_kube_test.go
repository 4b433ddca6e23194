package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/coffer-csi/coffer/tests/harness"
)

func (c *cluster) startEtcd(ctx context.Context) error {
	var err error
	c.etcdURL, c.etcd, err = harness.StartEtcd(ctx, c.procs, c.bins.etcd, c.path("etcd"))
	return err
}

func (c *cluster) startAPIServer(ctx context.Context) error {
	// Static tokens: the test's admin (system:masters). coffer and the
	// driver get their own identities in bootstrap.
	api, err := harness.StartAPIServer(ctx, c.procs, harness.APIServerOptions{
		Bin:     c.bins.apiserver,
		PKIDir:  c.path("pki"),
		EtcdURL: c.etcdURL,
		Args: []string{"--disable-admission-plugins=ServiceAccount",
			// As on clusters that enforce it: blockOwnerDeletion needs update
			// on the owner's finalizers.
			"--enable-admission-plugins=OwnerReferencesPermissionEnforcement"},
	})
	if err != nil {
		return err
	}
	c.apiserver, c.apiURL, c.caPEM, c.adminToken = api.Process, api.URL, api.CAPEM, api.AdminToken
	cfg := c.restConfig(c.adminToken)
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	c.adminKubeconfig = c.path("admin.kubeconfig")
	return c.writeKubeconfig(c.adminKubeconfig, "admin", c.adminToken)
}

func (c *cluster) restConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.apiURL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caPEM},
		QPS:             100,
		Burst:           200,
	}
}

func (c *cluster) writeKubeconfig(path, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.apiURL, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

// bootstrap creates what an installation of the driver and coffer creates:
// the driver's CRDs, its CSIDriver object, the node, coffer's
// ServiceAccount and RBAC, and public access to the issuer's keys.
func (c *cluster) bootstrap(ctx context.Context) error {
	if err := c.applyCRDs(ctx); err != nil {
		return err
	}
	if _, err := c.kube.StorageV1().CSIDrivers().Create(ctx, csiDriverObject(), metav1.CreateOptions{}); err != nil {
		return err
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: map[string]string{
		"kubernetes.io/hostname":        nodeName,
		"topology.kubernetes.io/region": nodeRegion,
	}}}
	if _, err := c.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return err
	}
	rbac := c.kube.RbacV1()
	// AWS fetches the cluster's keys anonymously from its public OIDC
	// issuer; Kubernetes' documented way to allow that.
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e:service-account-issuer-discovery-public"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:unauthenticated"}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	// coffer runs as its own ServiceAccount with only the permissions it
	// documents: reading ServiceAccounts (IRSA role annotations) and its
	// node (region label). A missing permission fails the suite.
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cofferNamespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := c.kube.CoreV1().ServiceAccounts(cofferNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: cofferSA}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "coffer"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "coffer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "coffer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: cofferSA, Namespace: cofferNamespace}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	var err error
	c.cofferKubeconfig, err = c.serviceAccountKubeconfig(ctx, cofferSA, "coffer.kubeconfig")
	return err
}

// serviceAccountKubeconfig writes file, a kubeconfig that authenticates as
// the ServiceAccount sa of coffer's namespace with a token valid for the
// run (4 hours), and returns its path.
func (c *cluster) serviceAccountKubeconfig(ctx context.Context, sa, file string) (string, error) {
	exp := int64(4 * 3600)
	tr, err := c.kube.CoreV1().ServiceAccounts(cofferNamespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	path := c.path(file)
	return path, c.writeKubeconfig(path, sa, tr.Status.Token)
}

// namespacedRole creates the Role name in coffer's namespace with rules,
// bound to the ServiceAccount sa there.
func (c *cluster) namespacedRole(ctx context.Context, name string, rules []rbacv1.PolicyRule, sa string) error {
	rbac := c.kube.RbacV1()
	if _, err := rbac.Roles(cofferNamespace).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := rbac.RoleBindings(cofferNamespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: cofferNamespace}},
	}, metav1.CreateOptions{})
	return err
}

// csiDriverObject is the CSIDriver the driver's Helm chart installs with
// rotation enabled and coffer's token audiences.
func csiDriverObject() *storagev1.CSIDriver {
	t := true
	f := false
	return &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: driverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       &f,
			PodInfoOnMount:       &t,
			RequiresRepublish:    &t,
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecycleEphemeral},
			TokenRequests:        []storagev1.TokenRequest{{Audience: audSTS}, {Audience: audPodIdentity}},
		},
	}
}

func (c *cluster) applyCRDs(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(c.bins.driverCRDs, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRDs in %s (%v)", c.bins.driverCRDs, err)
	}
	var names []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(raw)), 4096)
		for {
			var obj unstructured.Unstructured
			if err := dec.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return fmt.Errorf("%s: %w", f, err)
			}
			if obj.Object == nil {
				continue
			}
			if _, err := c.dyn.Resource(gvrCRD).Create(ctx, &obj, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating CRD from %s: %w", f, err)
			}
			names = append(names, obj.GetName())
		}
	}
	return poll(ctx, time.Minute, func(ctx context.Context) error {
		for _, n := range names {
			crd, err := c.dyn.Resource(gvrCRD).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			established := false
			for _, cond := range conds {
				m, _ := cond.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					established = true
				}
			}
			if !established {
				return fmt.Errorf("CRD %s not established", n)
			}
		}
		// Served, not just established: the first list succeeds.
		for _, gvr := range []schema.GroupVersionResource{gvrSPC, gvrSPCPS} {
			if _, err := c.dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *cluster) startControllerManager(ctx context.Context) error {
	var err error
	c.controllerManager, err = c.spawn("kube-controller-manager", c.bins.controllerManager, nil,
		"--kubeconfig="+c.adminKubeconfig,
		"--controllers=garbagecollector",
		"--secure-port=0",
		"--leader-elect=false",
	)
	if err != nil {
		return err
	}
	// No health endpoint without a serving port: ready is when the garbage
	// collector has synced its informers and starts collecting.
	return harness.WaitReady(ctx, c.controllerManager, time.Minute, func(context.Context) error {
		if !strings.Contains(c.controllerManager.LogSince(0), "Proceeding to collect garbage") {
			return errors.New(`the garbage collector has not logged "Proceeding to collect garbage" yet`)
		}
		return nil
	})
}

// setTokenRequests patches the CSIDriver's tokenRequests (mutable since
// Kubernetes 1.21).
func setTokenRequests(ctx context.Context, t *testing.T, trs any) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"tokenRequests": trs}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.kube.StorageV1().CSIDrivers().Patch(ctx, driverName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching CSIDriver tokenRequests: %v", err)
	}
}
