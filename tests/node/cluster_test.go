package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/coffer-csi/coffer/tests/harness"
)

const (
	nodeName   = "node1"
	nodeRegion = "us-east-1"
	driverName = "secrets-store.csi.k8s.io"
	audSTS     = "sts.amazonaws.com"
	// providerDir is where the driver's chart and coffer's chart, with
	// their defaults, put provider sockets.
	providerDir = "/var/run/secrets-store-csi-providers"
)

// binaries are the programs and inputs the tier runs, from the environment
// `make node-test` sets up.
type binaries struct {
	etcd, apiserver, controllerManager, scheduler, kubelet, kubectl string
	driver, registrar, livenessprobe                                string
	registrarVersion, livenessVersion                               string
	containerd, ctr, cniBin                                         string
	cofferImage, cofferVersion, fakeaws, repo                       string
	// AWS's provider (ASCP): its binary, version and chart directory.
	ascp, ascpVersion, ascpChart string
	// Flux's controllers, each with its CRDs in crds/ beside it.
	fluxSource, fluxKustomize, fluxHelm string
}

var binaryEnv = []struct {
	name string
	dst  func(*binaries) *string
	file bool
}{
	{"E2E_ETCD", func(b *binaries) *string { return &b.etcd }, true},
	{"E2E_KUBE_APISERVER", func(b *binaries) *string { return &b.apiserver }, true},
	{"E2E_KUBE_CONTROLLER_MANAGER", func(b *binaries) *string { return &b.controllerManager }, true},
	{"E2E_KUBE_SCHEDULER", func(b *binaries) *string { return &b.scheduler }, true},
	{"E2E_KUBELET", func(b *binaries) *string { return &b.kubelet }, true},
	{"E2E_KUBECTL", func(b *binaries) *string { return &b.kubectl }, true},
	{"E2E_DRIVER", func(b *binaries) *string { return &b.driver }, true},
	{"NODE_REGISTRAR", func(b *binaries) *string { return &b.registrar }, true},
	{"NODE_REGISTRAR_VERSION", func(b *binaries) *string { return &b.registrarVersion }, false},
	{"NODE_LIVENESSPROBE", func(b *binaries) *string { return &b.livenessprobe }, true},
	{"NODE_LIVENESSPROBE_VERSION", func(b *binaries) *string { return &b.livenessVersion }, false},
	{"NODE_CONTAINERD", func(b *binaries) *string { return &b.containerd }, true},
	{"NODE_CTR", func(b *binaries) *string { return &b.ctr }, true},
	{"NODE_CNI_BIN", func(b *binaries) *string { return &b.cniBin }, true},
	{"NODE_COFFER_IMAGE", func(b *binaries) *string { return &b.cofferImage }, true},
	{"NODE_COFFER_VERSION", func(b *binaries) *string { return &b.cofferVersion }, false},
	{"NODE_FAKEAWS", func(b *binaries) *string { return &b.fakeaws }, true},
	{"NODE_REPO", func(b *binaries) *string { return &b.repo }, true},
	{"NODE_ASCP", func(b *binaries) *string { return &b.ascp }, true},
	{"NODE_ASCP_VERSION", func(b *binaries) *string { return &b.ascpVersion }, false},
	{"NODE_ASCP_CHART", func(b *binaries) *string { return &b.ascpChart }, true},
	{"NODE_FLUX_SOURCE_CONTROLLER", func(b *binaries) *string { return &b.fluxSource }, true},
	{"NODE_FLUX_KUSTOMIZE_CONTROLLER", func(b *binaries) *string { return &b.fluxKustomize }, true},
	{"NODE_FLUX_HELM_CONTROLLER", func(b *binaries) *string { return &b.fluxHelm }, true},
}

func binariesFromEnv() (b binaries, missing []string, err error) {
	for _, e := range binaryEnv {
		v := os.Getenv(e.name)
		if v == "" {
			missing = append(missing, e.name)
			continue
		}
		if e.file {
			if _, serr := os.Stat(v); serr != nil {
				err = errors.Join(err, fmt.Errorf("%s=%s: %w", e.name, v, serr))
			}
		}
		*e.dst(&b) = v
	}
	return b, missing, err
}

// cluster is the one node and its control plane.
type cluster struct {
	bins binaries
	root string
	g    *harness.Group

	api             *harness.APIServer
	kube            kubernetes.Interface
	adminKubeconfig string
	kubeletDir      string // kubelet's --root-dir, bind-mounted rshared
	podLogs         string // kubelet's podLogsDirectory
	containerdSock  string
	fakeURL         string

	fake, kubelet *harness.Process

	providerDirExisted bool
	teardownOnce       sync.Once
}

func newCluster(bins binaries, root string) *cluster {
	return &cluster{
		bins:           bins,
		root:           root,
		g:              &harness.Group{LogDir: filepath.Join(root, "logs")},
		kubeletDir:     filepath.Join(root, "kubelet"),
		podLogs:        filepath.Join(root, "pod-logs"),
		containerdSock: filepath.Join(root, "containerd", "containerd.sock"),
	}
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.root}, elem...)...)
}

// startError names the component that did not start, with its log.
type startError struct {
	component string
	err       error
	log       string
}

func (e *startError) Error() string { return e.component + ": " + e.err.Error() }

// start brings up every part of the node in order; the first that fails
// stops the suite.
func (c *cluster) start(ctx context.Context) error {
	for _, d := range []string{c.g.LogDir, c.kubeletDir, c.podLogs, c.path("pki"), c.path("etcd"), c.path("images"), c.path("cni"), filepath.Dir(c.containerdSock)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if _, err := os.Stat(providerDir); err == nil {
		c.providerDirExisted = true
	}
	steps := []struct {
		name, proc string // proc: the process whose log explains a failure
		fn         func(context.Context) error
	}{
		{"etcd", "etcd", c.startEtcd},
		{"kube-apiserver", "kube-apiserver", c.startAPIServer},
		{"cluster objects", "kube-apiserver", c.bootstrap},
		{"kube-controller-manager", "kube-controller-manager", c.startControllerManager},
		{"kube-scheduler", "kube-scheduler", c.startScheduler},
		{"AWS fake", "fakeaws", c.startFake},
		{"images", "", c.buildImages},
		{"containerd", "containerd", c.startContainerd},
		{"kubelet", "kubelet", c.startKubelet},
		{"Secrets Store CSI Driver (Helm chart)", "kubelet", c.installDriver},
		{"coffer (Helm chart)", "kubelet", func(ctx context.Context) error { return c.installCoffer(ctx, c.bins.cofferVersion) }},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.fn(ctx); err != nil {
			se := &startError{component: s.name, err: err}
			for _, p := range c.g.Procs() {
				if p.Name == s.proc {
					se.log = harness.Tail(p.LogSince(0), 40)
				}
			}
			return se
		}
		fmt.Fprintf(os.Stderr, "node: %s ready in %s\n", s.name, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

func (c *cluster) startEtcd(ctx context.Context) error {
	url, _, err := harness.StartEtcd(ctx, c.g, c.bins.etcd, c.path("etcd"))
	if err != nil {
		return err
	}
	c.api = &harness.APIServer{} // filled by startAPIServer
	c.api.URL = url
	return nil
}

// nodeToken is kubelet's credential: the node's own identity
// (system:node:node1 in system:nodes), which the Node authorizer and the
// NodeRestriction admission plugin confine to this node's objects.
var nodeToken = harness.RandomToken()

func (c *cluster) startAPIServer(ctx context.Context) error {
	etcdURL := c.api.URL
	api, err := harness.StartAPIServer(ctx, c.g, harness.APIServerOptions{
		Bin:     c.bins.apiserver,
		PKIDir:  c.path("pki"),
		EtcdURL: etcdURL,
		// Pods reach the apiserver at the kubernetes Service's address,
		// which is local on the node: no kube-proxy is needed for it.
		BindAddress:           "0.0.0.0",
		Host:                  nodeIP,
		Port:                  443,
		CertIPs:               []net.IP{net.ParseIP(nodeIP), net.ParseIP(serviceIP)},
		CertNames:             []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		AuthorizationMode:     "Node,RBAC",
		ServiceClusterIPRange: serviceNet,
		Tokens:                []string{nodeToken + ",system:node:" + nodeName + ",node-uid,system:nodes"},
		Args: []string{
			"--advertise-address=" + nodeIP,
			"--allow-privileged=true",
			"--enable-admission-plugins=NodeRestriction",
		},
	})
	if err != nil {
		return err
	}
	c.api = api
	cfg := c.restConfig(api.AdminToken)
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	c.adminKubeconfig = c.path("admin.kubeconfig")
	return c.writeKubeconfig(c.adminKubeconfig, "admin", api.AdminToken)
}

func (c *cluster) restConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.api.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.api.CAPEM},
		QPS:             100,
		Burst:           200,
	}
}

func (c *cluster) writeKubeconfig(path, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["node"] = &clientcmdapi.Cluster{Server: c.api.URL, CertificateAuthorityData: c.api.CAPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["node"] = &clientcmdapi.Context{Cluster: "node", AuthInfo: user}
	cfg.CurrentContext = "node"
	return clientcmd.WriteToFile(*cfg, path)
}

// bootstrap allows what AWS's IAM does with a cluster's OIDC issuer:
// fetching its keys anonymously (Kubernetes' documented binding).
func (c *cluster) bootstrap(ctx context.Context) error {
	_, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "node:service-account-issuer-discovery-public"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:unauthenticated"}},
	}, metav1.CreateOptions{})
	return err
}

func (c *cluster) startControllerManager(ctx context.Context) error {
	p, err := c.g.Spawn("kube-controller-manager", c.bins.controllerManager, nil,
		"--kubeconfig="+c.adminKubeconfig,
		// What a node's workloads need: DaemonSets and Deployments (and
		// their ReplicaSets), the Job of the driver chart's CRD hook,
		// ServiceAccounts and their tokens, the kube-root-ca.crt
		// ConfigMap every projected token volume reads, namespace
		// deletion, garbage collection, and nodelifecycle, which lifts a
		// new node's not-ready taint.
		"--controllers=daemonset,deployment,replicaset,job,garbagecollector,serviceaccount,serviceaccount-token,root-ca-cert-publisher,namespace,nodelifecycle",
		"--service-account-private-key-file="+c.path("pki", "sa.key"),
		"--root-ca-file="+c.path("pki", "apiserver.crt"),
		"--secure-port=0",
		"--leader-elect=false",
	)
	if err != nil {
		return err
	}
	// Ready when the serviceaccount controller has made the default
	// namespace's ServiceAccount and the root CA is published.
	return harness.WaitReady(ctx, p, 2*time.Minute, func(ctx context.Context) error {
		if _, err := c.kube.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return err
		}
		_, err := c.kube.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err
	})
}

func (c *cluster) startScheduler(ctx context.Context) error {
	p, err := c.g.Spawn("kube-scheduler", c.bins.scheduler, nil,
		"--kubeconfig="+c.adminKubeconfig, "--leader-elect=false", "--secure-port=0")
	if err != nil {
		return err
	}
	// No serving port: ready once it has logged that it runs, and still up.
	return harness.WaitReady(ctx, p, time.Minute, func(context.Context) error {
		if !strings.Contains(p.LogSince(0), "Attempting to acquire leader lease") && !strings.Contains(p.LogSince(0), "Starting Kubernetes Scheduler") {
			return errors.New("kube-scheduler has not logged its start yet")
		}
		return nil
	})
}

func (c *cluster) startContainerd(ctx context.Context) error {
	dir := filepath.Dir(c.containerdSock)
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  # root here lacks CAP_SYS_RESOURCE: kubelet's -998 for sandboxes cannot
  # be set, and every sandbox would fail without this.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[6]q
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.containerdSock, pauseRef, c.bins.cniBin, c.path("cni"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o600); err != nil {
		return err
	}
	// The pods' bridge: host-local addresses in podNet, the bridge as their
	// gateway, no masquerading (nothing leaves the namespace).
	conflist := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "node",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}
  ]
}
`, podNet, podGW)
	if err := os.WriteFile(c.path("cni", "10-node.conflist"), []byte(conflist), 0o600); err != nil {
		return err
	}
	p, err := c.g.Spawn("containerd", c.bins.containerd, nil, "--config="+filepath.Join(dir, "config.toml"))
	if err != nil {
		return err
	}
	if err := harness.WaitReady(ctx, p, time.Minute, func(ctx context.Context) error {
		return exec.CommandContext(ctx, c.bins.ctr, "-a", c.containerdSock, "version").Run()
	}); err != nil {
		return err
	}
	return c.importImages(ctx)
}

// startKubelet runs kubelet with the node's identity, its root directory
// bind-mounted onto itself with shared propagation (the driver's mounts
// under it must reach the pods), and waits for the Node to be Ready and
// schedulable.
func (c *cluster) startKubelet(ctx context.Context) error {
	if err := syscall.Mount(c.kubeletDir, c.kubeletDir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting kubelet's root: %w", err)
	}
	if err := syscall.Mount("", c.kubeletDir, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("making kubelet's root shared: %w", err)
	}
	kubeconfig := c.path("kubelet.kubeconfig")
	if err := c.writeKubeconfig(kubeconfig, "system:node:"+nodeName, nodeToken); err != nil {
		return err
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
containerRuntimeEndpoint: unix://%s
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: %q}}
authorization: {mode: Webhook}
address: %s
readOnlyPort: 0
resolvConf: ""
podLogsDir: %q
evictionHard: {}
imageGCHighThresholdPercent: 100
syncFrequency: 5s
fileCheckFrequency: 5s
`, c.containerdSock, c.path("pki", "apiserver.crt"), nodeIP, c.podLogs)
	if err := os.WriteFile(c.path("kubelet.yaml"), []byte(config), 0o600); err != nil {
		return err
	}
	var err error
	c.kubelet, err = c.g.Spawn("kubelet", c.bins.kubelet, nil,
		"--config="+c.path("kubelet.yaml"),
		"--kubeconfig="+kubeconfig,
		"--root-dir="+c.kubeletDir,
		"--hostname-override="+nodeName,
		"--node-ip="+nodeIP,
		"--node-labels=topology.kubernetes.io/region="+nodeRegion,
	)
	if err != nil {
		return err
	}
	return harness.WaitReady(ctx, c.kubelet, 2*time.Minute, func(ctx context.Context) error {
		n, err := c.kube.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return errors.New("node not Ready")
		}
		for _, t := range n.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule {
				return fmt.Errorf("node still tainted %s", t.Key)
			}
		}
		return nil
	})
}

func (c *cluster) startFake(ctx context.Context) error {
	seed := c.path("fakeaws-seed.yaml")
	if err := os.WriteFile(seed, []byte(fakeSeed()), 0o600); err != nil {
		return err
	}
	urlFile := c.path("fakeaws.url")
	var err error
	// On the node's address: coffer's pods reach it from their own network
	// namespaces through the bridge, as they would reach AWS.
	c.fake, err = c.g.Spawn("fakeaws", c.bins.fakeaws, nil,
		"--addr="+nodeIP+":0",
		"--seed="+seed,
		"--ready-file="+urlFile,
		// STS trusts the cluster's issuer and verifies tokens against the
		// keys the apiserver publishes, as IAM's OIDC provider does.
		"--issuer="+c.api.URL,
		"--jwks-url="+c.api.URL+"/openid/v1/jwks",
		"--jwks-ca-file="+c.path("pki", "apiserver.crt"),
	)
	if err != nil {
		return err
	}
	return harness.WaitReady(ctx, c.fake, time.Minute, func(ctx context.Context) error {
		b, err := os.ReadFile(urlFile)
		if err != nil {
			return err
		}
		c.fakeURL = strings.TrimSpace(string(b))
		if c.fakeURL == "" {
			return errors.New("empty URL file")
		}
		return nil
	})
}

// teardown deletes the releases' pods first, so kubelet unmounts their
// volumes, then stops every process. The outer process (supervise) kills
// whatever is left in the namespaces and unmounts what remains.
func (c *cluster) teardown() {
	c.teardownOnce.Do(func() {
		if c.kube != nil && c.kubelet != nil {
			if exited, _ := c.kubelet.Exited(); !exited {
				c.deleteWorkloads()
			}
		}
		c.g.StopAll(10 * time.Second)
		if err := harness.UnmountUnder(c.root); err != nil {
			fmt.Fprintf(os.Stderr, "node: cleanup: %v\n", err)
		}
		if err := syscall.Unmount(c.kubeletDir, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			fmt.Fprintf(os.Stderr, "node: cleanup: unmount %s: %v\n", c.kubeletDir, err)
		}
		if !c.providerDirExisted {
			_ = os.RemoveAll(providerDir)
			_ = os.Remove("/etc/kubernetes/secrets-store-csi-providers")
		}
		if os.Getenv("NODE_KEEP") != "" {
			fmt.Fprintf(os.Stderr, "node: logs kept in %s\n", c.g.LogDir)
		}
	})
}

// deleteWorkloads deletes every test namespace and waits (bounded) until
// their pods are gone, so their volumes are unmounted by kubelet and the
// driver rather than by force.
func (c *cluster) deleteWorkloads() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nss, err := c.kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: testLabel})
	if err != nil {
		return
	}
	for _, ns := range nss.Items {
		_ = c.kube.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	}
	for ctx.Err() == nil {
		pods, err := c.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		left := 0
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Namespace, "t-") {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
