package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// ascpRelease is the release name AWS's documentation installs its
// provider under.
const ascpRelease = "secrets-provider-aws"

// switchTimeout bounds each wait for a remount: kubelet's backoff (up to
// about two minutes) plus the driver's poll and coffer's TTL, generously.
const switchTimeout = 4 * time.Minute

var gvrSPCPS = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"}

// switchObjects are Secrets Manager (one with jmesPath) and Parameter Store
// objects, written as ASCP's documentation writes them; node/switch is
// the one that changes in AWS.
const switchObjects = mixedObjects + `- objectName: node/switch
  objectType: secretsmanager
  objectAlias: switch
`

func switchWant(value string) map[string]string {
	m := maps.Clone(mixedWant)
	m["switch"] = value
	return m
}

// Scenario 8: the drop-in promise, live. Pods whose unchanged
// SecretProviderClasses (provider: aws) mount through AWS's provider
// (ASCP, built from its source and installed with its own chart) keep
// their files when ASCP is uninstalled and coffer installed: their next
// rotation remount is answered by coffer with the same files and the same
// versions in their SecretProviderClassPodStatus, a change in AWS then
// reaches them, and new pods mount. Then back to ASCP, with the same
// checks.
func TestSwitchFromAWSProvider(t *testing.T) {
	endpoint := startAWSEndpoint(t)
	// The tier starts with coffer installed (TestUpgradeAndUninstall
	// removes it): a cluster that runs ASCP has no coffer.
	if ok, err := env.helmInstalled(cofferRelease); err != nil {
		t.Fatal(err)
	} else if ok {
		if err := env.uninstallCoffer(); err != nil {
			t.Fatal(err)
		}
		providerGone(t, cofferRelease)
	}
	t.Cleanup(func() {
		if ok, _ := env.helmInstalled(ascpRelease); ok {
			_ = env.helmUninstall(ascpRelease)
		}
	})
	mustStart(t, "AWS's provider (ASCP, its own chart)", ascpRelease, func(ctx context.Context) error { return env.installASCP(ctx, endpoint) })

	ns := namespace(t, "switch")
	secretProviderClass(t, ns, "app", map[string]any{"objects": switchObjects}, nil)
	value := "canary-node-switch-1"
	pods := []*corev1.Pod{waitRunning(t, ns, createPod(t, workloadPod(ns, "under-ascp", "app", "read", "/mnt/secrets", "2s")).Name, 2*time.Minute)}
	podFiles(t, pods[0], time.Minute, wantFiles(switchWant(value)))
	versions := map[string]map[string]string{pods[0].Name: podStatusVersions(t, ns, pods[0].Name, nil)}
	if !fakeCall(env.fake.LogSince(0), "AssumeRoleWithWebIdentity", sa(ns, "app"), "ok") {
		t.Fatalf("ASCP mounted, but the AWS fake logged no AssumeRoleWithWebIdentity for %s", sa(ns, "app"))
	}

	steps := []struct {
		to, release, from, newPod string
		install                   func(context.Context) error
	}{
		{"coffer", cofferRelease, ascpRelease, "under-coffer", func(ctx context.Context) error { return env.installCoffer(ctx, env.bins.cofferVersion) }},
		{"ASCP", ascpRelease, cofferRelease, "back-under-ascp", func(ctx context.Context) error { return env.installASCP(ctx, endpoint) }},
	}
	for i, s := range steps {
		t.Logf("switching to %s", s.to)
		if err := env.helmUninstall(s.from); err != nil {
			t.Fatal(err)
		}
		// The old provider removes its socket when it stops: the new one
		// starts only once the old one's pods are gone.
		providerGone(t, s.from)
		mark := env.fake.LogSize()
		mustStart(t, s.to, s.release, s.install)

		// The running pods' next rotation remount is the new provider's:
		// it assumes the pods' role anew. (kubelet backs off republishing
		// while no provider serves, up to about two minutes.) A later
		// round has written what that remount returned.
		answered(t, ns, mark, true, switchTimeout)
		answered(t, ns, env.fake.LogSize(), false, switchTimeout)
		for _, p := range pods {
			t.Logf("pod %s: versions %v", p.Name, versions[p.Name])
			newRound(t, p, switchWant(value))
			if got := podStatusVersions(t, ns, p.Name, nil); !maps.Equal(got, versions[p.Name]) {
				t.Fatalf("pod %s: after the switch to %s its SecretProviderClassPodStatus holds versions %v, before %v", p.Name, s.to, got, versions[p.Name])
			}
		}

		// A change in AWS reaches every running pod, and its status.
		value = fmt.Sprintf("canary-node-switch-%d", i+2)
		putSecret(ctxFor(t, 30*time.Second), t, "node/switch", value)
		for _, p := range pods {
			podFiles(t, p, switchTimeout, wantFiles(switchWant(value)))
			before := versions[p.Name]
			versions[p.Name] = podStatusVersions(t, ns, p.Name, func(v map[string]string) error {
				changed := 0
				for id, ver := range v {
					if before[id] != ver {
						changed++
					}
				}
				if len(v) != len(before) || changed != 1 {
					return fmt.Errorf("versions %v, before the change %v: want exactly node/switch's changed", v, before)
				}
				return nil
			})
		}

		// New pods mount.
		p := waitRunning(t, ns, createPod(t, workloadPod(ns, s.newPod, "app", "read", "/mnt/secrets", "2s")).Name, 2*time.Minute)
		podFiles(t, p, time.Minute, wantFiles(switchWant(value)))
		versions[p.Name] = podStatusVersions(t, ns, p.Name, nil)
		if !maps.Equal(versions[p.Name], versions[pods[0].Name]) {
			t.Fatalf("new pod %s mounted versions %v, the running pod %s has %v", p.Name, versions[p.Name], pods[0].Name, versions[pods[0].Name])
		}
		pods = append(pods, p)
	}
}

// providerGone waits until no pod of the release is left and the provider
// directory holds no aws.sock.
func providerGone(t *testing.T, release string) {
	t.Helper()
	err := poll(2*time.Minute, func(ctx context.Context) error {
		pods, err := env.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Name, release+"-") {
				return fmt.Errorf("pod %s is still there", p.Name)
			}
		}
		if _, err := os.Stat(filepath.Join(providerDir, "aws.sock")); err == nil {
			return errors.New("aws.sock is still in " + providerDir)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after helm uninstall %s: %v\n%s", release, err, env.podReport(releaseNS))
	}
}

// mustStart runs a component's install (helm --wait) while watching the
// release's pods: a container that fails to start (exits, restarts, or
// cannot be created) stops the scenario at once, without waiting for
// helm's timeout, with the pods' states, their logs' tails and the command
// that reruns the scenario.
func mustStart(t *testing.T, component, release string, install func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), helmTimeout+time.Minute)
	defer cancel()
	t0 := time.Now()
	done := make(chan error, 1)
	go func() { done <- install(ctx) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s did not start: %v\nrerun this scenario with: %s", component, err, rerunHint(t.Name()))
			}
			t.Logf("%s ready in %s", component, time.Since(t0).Round(time.Millisecond))
			return
		case <-tick.C:
			if why := failedToStart(release); why != "" {
				cancel()
				<-done
				t.Fatalf("%s did not start: %s\npods in %s:\n%s\nrerun this scenario with: %s",
					component, why, releaseNS, env.podReport(releaseNS), rerunHint(t.Name()))
			}
		}
	}
}

// failedToStart names a container of the release's pods that exited,
// restarted, or cannot be created or pulled; "" if none.
func failedToStart(release string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pods, err := env.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Name, release+"-") || p.DeletionTimestamp != nil {
			continue
		}
		for _, st := range p.Status.ContainerStatuses {
			switch {
			case st.RestartCount > 0:
				return fmt.Sprintf("container %s of pod %s restarted %d times", st.Name, p.Name, st.RestartCount)
			case st.State.Terminated != nil:
				return fmt.Sprintf("container %s of pod %s exited: %s (exit %d)", st.Name, p.Name, st.State.Terminated.Reason, st.State.Terminated.ExitCode)
			case st.State.Waiting != nil && st.State.Waiting.Reason != "ContainerCreating" && st.State.Waiting.Reason != "PodInitializing":
				return fmt.Sprintf("container %s of pod %s: %s %s", st.Name, p.Name, st.State.Waiting.Reason, st.State.Waiting.Message)
			}
		}
	}
	return ""
}

// answered waits until the AWS fake has served, after mark, a read of
// node/switch and, if sts, an AssumeRoleWithWebIdentity for the
// scenario's ServiceAccount (coffer caches the role's credentials).
func answered(t *testing.T, ns string, mark int64, sts bool, timeout time.Duration) {
	t.Helper()
	err := poll(timeout, func(context.Context) error {
		calls := env.fake.LogSince(mark)
		if sts && !fakeCall(calls, "AssumeRoleWithWebIdentity", sa(ns, "app"), "ok") {
			return errors.New("no AssumeRoleWithWebIdentity for " + sa(ns, "app"))
		}
		// coffer reads the value (alone or in a batch); ASCP reads it,
		// or, when the driver passes the pod's current versions, asks
		// DescribeSecret whether they are current.
		for _, l := range strings.Split(calls, "\n") {
			for _, op := range []string{"GetSecretValue", "BatchGetSecretValue", "DescribeSecret"} {
				if strings.Contains(l, "operation="+op+" ") && strings.Contains(l, "node/switch") && strings.Contains(l, "outcome=ok") {
					t.Logf("answered: %s of node/switch", op)
					return nil
				}
			}
		}
		return errors.New("no read of node/switch")
	})
	if err != nil {
		t.Fatalf("no remount reached AWS: %v\nprovider pods:\n%s\ncomponent logs:\n%s", err, env.podReport(releaseNS), env.g.LogTailsSince(nil, 20))
	}
}

// newRound waits for a round of reads the pod printed after now and
// checks it.
func newRound(t *testing.T, p *corev1.Pod, want map[string]string) {
	t.Helper()
	out, _ := containerOutput(p, "app")
	_, round, _ := out.files()
	podFiles(t, p, time.Minute, func(files map[string]string) error {
		o, _ := containerOutput(p, "app")
		if _, r, _ := o.files(); r <= round {
			return errors.New("no new round of reads yet")
		}
		return wantFiles(want)(files)
	})
}

// podStatusVersions returns the object versions the driver recorded in
// the pod's SecretProviderClassPodStatus (object id to version), once ok
// (if given) accepts them.
func podStatusVersions(t *testing.T, ns, pod string, ok func(map[string]string) error) map[string]string {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.restConfig(env.api.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	err = poll(2*time.Minute, func(ctx context.Context) error {
		list, err := dyn.Resource(gvrSPCPS).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, item := range list.Items {
			status, _ := item.Object["status"].(map[string]any)
			if status["podName"] != pod {
				continue
			}
			objs, _ := status["objects"].([]any)
			got = map[string]string{}
			for _, o := range objs {
				m, _ := o.(map[string]any)
				id, _ := m["id"].(string)
				v, _ := m["version"].(string)
				got[id] = v
			}
			if len(got) == 0 {
				return fmt.Errorf("SecretProviderClassPodStatus %s holds no objects", item.GetName())
			}
			if ok != nil {
				return ok(got)
			}
			return nil
		}
		return fmt.Errorf("no SecretProviderClassPodStatus for pod %s", pod)
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %v", ns, pod, err)
	}
	return got
}

// startAWSEndpoint runs images/awsendpoint in a pod of its own (its own
// address, so port 443 is free) and returns that address: AWS's provider
// uses it as its DNS server, and reaches the AWS fake through it at the
// public endpoint names, with the certificate its image trusts.
func startAWSEndpoint(t *testing.T) string {
	t.Helper()
	ns := namespace(t, "aws")
	cert, err := os.ReadFile(env.path("pki", "aws-endpoint.crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(env.path("pki", "aws-endpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 30*time.Second)
	if _, err := env.kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tls"},
		Data:       map[string][]byte{"tls.crt": cert, "tls.key": key},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "aws-endpoint", Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "app", Image: awsEndpointRef, ImagePullPolicy: corev1.PullNever,
				Args: []string{"-cert", "/tls/tls.crt", "-key", "/tls/tls.key", "-upstream", env.fakeURL},
				Env: []corev1.EnvVar{{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"},
				}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/tls", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}}},
		},
	})
	pod = waitRunning(t, ns, pod.Name, 2*time.Minute)
	if err := poll(time.Minute, func(context.Context) error {
		out, err := containerOutput(pod, "app")
		if err != nil {
			return err
		}
		for _, l := range out.lines {
			if strings.Contains(l, "HTTPS on :443") {
				return nil
			}
		}
		return errors.New("the AWS endpoint has not logged its start")
	}); err != nil {
		t.Fatalf("AWS endpoint did not start: %v\n%s\nrerun this scenario with: %s", err, env.podReport(ns), rerunHint(t.Name()))
	}
	if pod.Status.PodIP == "" {
		t.Fatal("the AWS endpoint's pod has no address")
	}
	return pod.Status.PodIP
}

// ascpChartDir is AWS's chart as its users install it: a copy whose
// charts/ holds the driver's chart it depends on (1.6.0, the one coffer's
// chart carries). The source in ../shared/peers stays untouched.
func (c *cluster) ascpChartDir() (string, error) {
	dir := c.path("charts", "secrets-store-csi-driver-provider-aws")
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.CopyFS(dir, os.DirFS(c.bins.ascpChart)); err != nil {
		return "", err
	}
	if err := os.CopyFS(filepath.Join(dir, "charts", "secrets-store-csi-driver"), os.DirFS(c.driverChart())); err != nil {
		return "", err
	}
	return dir, nil
}

// ascpValues are what a user of this node sets: no driver (it is installed
// on its own), the driver writes the files (the driver's chart 1.6's
// default), kubelet's root, and the DNS server that serves AWS's names.
// The image is the chart's own default reference, already on the node.
func (c *cluster) ascpValues(dnsServer string) map[string]any {
	return map[string]any{
		"secrets-store-csi-driver": map[string]any{"install": false},
		"kubeletPath":              c.kubeletDir,
		"driverWritesSecrets":      true,
		"dnsPolicy":                "None",
		"dnsConfig":                map[string]any{"nameservers": []any{dnsServer}},
	}
}

func (c *cluster) installASCP(ctx context.Context, dnsServer string) error {
	dir, err := c.ascpChartDir()
	if err != nil {
		return err
	}
	return c.helmInstall(ctx, ascpRelease, dir, c.ascpValues(dnsServer))
}
