package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/tests/harness"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/storage/driver"
)

const (
	driverRelease = "csi-secrets-store"
	cofferRelease = "coffer"
	// Both installed into kube-system, as docs/install.md tells users.
	releaseNS = "kube-system"
	// The driver's rotation settings as docs/install.md documents them, with
	// a poll interval short enough for a test, and coffer's cache TTL at
	// half of it (the chart's guidance).
	rotationPoll = 10 * time.Second
	cofferTTL    = 5 * time.Second
	// restartDebounce is coffer-controller sync's --restart-debounce (scenario 7).
	restartDebounce = 5 * time.Second
	helmTimeout     = 4 * time.Minute
)

func (c *cluster) helmConfig(ns string) (*action.Configuration, error) {
	settings := cli.New()
	settings.KubeConfig = c.adminKubeconfig
	settings.SetNamespace(ns)
	log, err := os.OpenFile(filepath.Join(c.g.LogDir, "helm.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(settings.RESTClientGetter(), ns, "secret", func(format string, v ...any) {
		fmt.Fprintf(log, time.Now().Format(time.RFC3339)+" "+format+"\n", v...)
	}); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *cluster) driverChart() string {
	return filepath.Join(c.bins.repo, "deployment/charts/coffer/charts/secrets-store-csi-driver")
}

func (c *cluster) cofferChart() string {
	return filepath.Join(c.bins.repo, "deployment/charts/coffer")
}

// driverValues are docs/install.md's: both token audiences, rotation, the
// driver's own Secret sync; plus where this node's kubelet keeps its root.
func (c *cluster) driverValues() map[string]any {
	return map[string]any{
		"tokenRequests": []any{
			map[string]any{"audience": audSTS},
			map[string]any{"audience": "pods.eks.amazonaws.com"},
		},
		"enableSecretRotation": true,
		"rotationPollInterval": rotationPoll.String(),
		"syncSecret":           map[string]any{"enabled": true},
		"linux": map[string]any{
			"kubeletRootDir":     c.kubeletDir,
			"registrarImage":     map[string]any{"tag": c.bins.registrarVersion},
			"livenessProbeImage": map[string]any{"tag": c.bins.livenessVersion},
		},
	}
}

// cofferValues change only the image and the AWS endpoint (the fake, on
// the node's address), plus the cache TTL the rotation settings call for
// and the Secret sync controller scenarios 4 and 7 need.
func (c *cluster) cofferValues(version string) map[string]any {
	endpoint := []any{map[string]any{"name": "AWS_ENDPOINT_URL", "value": c.fakeURL}}
	return map[string]any{
		"image":    map[string]any{"repository": cofferRepo, "tag": version},
		"extraEnv": endpoint,
		"cache":    map[string]any{"ttl": cofferTTL.String()},
		"sync": map[string]any{
			"controller": map[string]any{"enabled": true, "replicas": 1, "extraEnv": endpoint,
				// Scenario 7: restarts on rotation.
				"restarts": map[string]any{"enabled": true, "debounce": restartDebounce.String()}},
		},
	}
}

func (c *cluster) helmInstall(ctx context.Context, release, chartDir string, values map[string]any) error {
	cfg, err := c.helmConfig(releaseNS)
	if err != nil {
		return err
	}
	ch, err := loader.Load(chartDir)
	if err != nil {
		return err
	}
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = release, releaseNS
	in.Wait, in.WaitForJobs, in.Timeout = true, true, helmTimeout
	in.PostRenderer = irsaWebhook{}
	if _, err := in.RunWithContext(ctx, ch, values); err != nil {
		return fmt.Errorf("helm install %s %s --wait: %w\npods in %s:\n%s", release, chartDir, err, releaseNS, c.podReport(releaseNS))
	}
	return nil
}

func (c *cluster) installDriver(ctx context.Context) error {
	return c.helmInstall(ctx, driverRelease, c.driverChart(), c.driverValues())
}

func (c *cluster) installCoffer(ctx context.Context, version string) error {
	return c.helmInstall(ctx, cofferRelease, c.cofferChart(), c.cofferValues(version))
}

func (c *cluster) upgradeCoffer(ctx context.Context, version string) error {
	return c.upgradeCofferWith(ctx, c.cofferValues(version))
}

func (c *cluster) upgradeCofferWith(ctx context.Context, values map[string]any) error {
	cfg, err := c.helmConfig(releaseNS)
	if err != nil {
		return err
	}
	ch, err := loader.Load(c.cofferChart())
	if err != nil {
		return err
	}
	up := action.NewUpgrade(cfg)
	up.Namespace, up.Wait, up.Timeout = releaseNS, true, helmTimeout
	up.PostRenderer = irsaWebhook{}
	if _, err := up.RunWithContext(ctx, cofferRelease, ch, values); err != nil {
		return fmt.Errorf("helm upgrade %s --wait: %w\npods in %s:\n%s", cofferRelease, err, releaseNS, c.podReport(releaseNS))
	}
	return nil
}

func (c *cluster) uninstallCoffer() error {
	return c.helmUninstall(cofferRelease)
}

func (c *cluster) helmUninstall(release string) error {
	cfg, err := c.helmConfig(releaseNS)
	if err != nil {
		return err
	}
	un := action.NewUninstall(cfg)
	un.Wait, un.Timeout = true, helmTimeout
	if _, err := un.Run(release); err != nil {
		return fmt.Errorf("helm uninstall %s --wait: %w", release, err)
	}
	return nil
}

// helmInstalled tells whether release is deployed.
func (c *cluster) helmInstalled(release string) (bool, error) {
	cfg, err := c.helmConfig(releaseNS)
	if err != nil {
		return false, err
	}
	if _, err := action.NewStatus(cfg).Run(release); err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// podReport tells why a namespace's pods do not run: each pod's phase, its
// containers' states, its events and the last lines each container logged.
func (c *cluster) podReport(ns string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: %s\n", p.Name, p.Status.Phase)
		for _, st := range p.Status.ContainerStatuses {
			switch {
			case st.State.Waiting != nil:
				fmt.Fprintf(&b, "  %s waiting: %s %s\n", st.Name, st.State.Waiting.Reason, st.State.Waiting.Message)
			case st.State.Terminated != nil:
				fmt.Fprintf(&b, "  %s terminated: %s (exit %d) %s\n", st.Name, st.State.Terminated.Reason, st.State.Terminated.ExitCode, st.State.Terminated.Message)
			default:
				fmt.Fprintf(&b, "  %s running, ready %t, restarts %d\n", st.Name, st.Ready, st.RestartCount)
			}
		}
		b.WriteString(events(ns, p.Name))
		logs, _ := filepath.Glob(filepath.Join(c.podLogs, fmt.Sprintf("%s_%s_%s", ns, p.Name, p.UID), "*", "*.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			fmt.Fprintf(&b, "  --- %s\n%s\n", l, harness.Tail(string(data), 10))
		}
	}
	return b.String()
}
