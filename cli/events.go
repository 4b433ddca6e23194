package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/klog/v2"

	"github.com/coffer-csi/coffer/internal/kube"

	"github.com/coffer-csi/coffer/internal/version"
	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/wiring"
)

// eventsConfig is coffer-controller events' command line.
type eventsConfig struct {
	queueURL        string
	ledger          string
	ledgerNamespace string
	canaryParameter string
	canarySecret    string
	canaryInterval  time.Duration
	retention       time.Duration
	metricsAddr     string
	kubeconfig      string
	fips, dualStack bool
	election        electionFlags
	log             logFlags
}

func (c *eventsConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.queueURL, "queue-url", "", "URL of the SQS queue the EventBridge rules send AWS's change events to (required); the queue's account and region are the ones the ledger covers")
	fs.StringVar(&c.ledger, "ledger", "coffer-changes", "name of the ConfigMap the change ledger is published in")
	fs.StringVar(&c.ledgerNamespace, "ledger-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the ledger's ConfigMap (default $POD_NAMESPACE, else the in-cluster namespace)")
	fs.StringVar(&c.canaryParameter, "canary-parameter", "/coffer/canary", "Parameter Store parameter, in the queue's account and region, whose description the canary writes (created if missing)")
	fs.StringVar(&c.canarySecret, "canary-secret", "coffer/canary", "Secrets Manager secret (a name, in the queue's account and region) whose description the canary writes; it must exist")
	fs.DurationVar(&c.canaryInterval, "canary-interval", 30*time.Second, "how often the canary writes a fresh nonce and waits to see both announcements come back")
	fs.DurationVar(&c.retention, "ledger-retention", 30*time.Minute, "how long the ledger keeps an entry (at least the nodes' --event-max-age, or values are read again sooner)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "address for Prometheus metrics at /metrics and /healthz, e.g. :8080 (empty: off)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes API (default: in-cluster configuration)")
	fs.BoolVar(&c.fips, "fips", false, "use FIPS endpoints for every AWS call")
	fs.BoolVar(&c.dualStack, "dual-stack", false, "use dual-stack (IPv6) AWS endpoints")
	c.election.register(fs, "coffer-events", "consumes the queue")
	c.log.register(fs)
}

func (c *eventsConfig) validate() error {
	var errs []error
	if c.queueURL == "" {
		errs = append(errs, errors.New("--queue-url is required: the URL of the SQS queue the EventBridge rules target"))
	} else if _, err := changes.ParseQueueURL(c.queueURL); err != nil {
		errs = append(errs, fmt.Errorf("--queue-url: %w", err))
	}
	if msgs := validation.IsDNS1123Subdomain(c.ledger); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--ledger %q is not a ConfigMap name (%s)", c.ledger, strings.Join(msgs, "; ")))
	}
	if c.ledgerNamespace != "" {
		if msgs := validation.IsDNS1123Label(c.ledgerNamespace); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--ledger-namespace %q is not a namespace name (%s)", c.ledgerNamespace, strings.Join(msgs, "; ")))
		}
	}
	if c.canaryParameter == "" || strings.HasPrefix(c.canaryParameter, "arn:") {
		errs = append(errs, errors.New("--canary-parameter must be a parameter name (not an ARN), in the queue's account and region"))
	}
	if c.canarySecret == "" || strings.HasPrefix(c.canarySecret, "arn:") {
		errs = append(errs, errors.New("--canary-secret must be a secret name (not an ARN), in the queue's account and region"))
	}
	if c.canaryInterval < time.Second {
		errs = append(errs, errors.New("--canary-interval must be at least 1s (each round writes AWS twice)"))
	}
	if c.retention < time.Minute {
		errs = append(errs, errors.New("--ledger-retention must be at least 1m (and should be at least the nodes' --event-max-age)"))
	}
	errs = append(errs, c.election.validate()...)
	return errors.Join(errs...)
}

// namespace is the ledger's namespace: the flag's, else the pod's own.
func (c *eventsConfig) namespace() (string, error) {
	if c.ledgerNamespace != "" {
		return c.ledgerNamespace, nil
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return "", errors.New("the ledger needs a namespace: set --ledger-namespace or POD_NAMESPACE")
	}
	return strings.TrimSpace(string(b)), nil
}

// runEvents runs the change events' consumer: the queue's announcements
// into the ledger's ConfigMap, while this process holds the Lease.
func runEvents(ctx context.Context, c *eventsConfig, parts ControllerParts, stderr io.Writer) error {
	if err := c.validate(); err != nil {
		return err
	}
	log, err := c.log.logger(stderr)
	if err != nil {
		return err
	}
	klog.SetSlogLogger(log) // client-go's own messages, in coffer's format
	ns, err := c.namespace()
	if err != nil {
		return err
	}
	queue, _ := changes.ParseQueueURL(c.queueURL) // validated
	k8s, err := wiring.Connect(c.kubeconfig, false)
	if err != nil {
		return err
	}
	if parts.Consumer == nil {
		return errors.New("this binary cannot consume change events: run coffer-controller events")
	}
	reg := prometheus.NewRegistry()
	consume, err := parts.Consumer(ctx, ConsumerConfig{
		QueueURL: c.queueURL, Queue: queue, Namespace: ns, Ledger: c.ledger,
		CanaryParameter: c.canaryParameter, CanarySecret: c.canarySecret,
		CanaryInterval: c.canaryInterval, Retention: c.retention, FIPS: c.fips, DualStack: c.dualStack,
		ConfigMaps: k8s.Client.ConfigMaps(ns), Registry: reg, Logger: log,
	})
	if err != nil {
		return err
	}
	// Alive is all a controller can say: leadership is the Lease's.
	alive := func(context.Context) error { return nil }
	if err := startOps(ctx, opsAddrs{metrics: c.metricsAddr}, alive, reg, log); err != nil {
		return err
	}
	log.Info("coffer-controller events starting", "version", version.Version, "queue", c.queueURL,
		"ledger", ns+"/"+c.ledger, "leaderElect", c.election.leaderElect)
	return c.election.run(ctx, parts, k8s.Config, "consuming change events", consume, log)
}

// ConsumerConfig is what coffer-controller events' flags give the
// consumer (ControllerParts.Consumer).
type ConsumerConfig struct {
	// QueueURL is the queue as given, Queue what its URL says.
	QueueURL string
	Queue    changes.QueueURL
	// Namespace and Ledger name the ledger's ConfigMap; ConfigMaps are
	// that namespace's.
	Namespace, Ledger             string
	ConfigMaps                    kube.ConfigMapInterface
	CanaryParameter, CanarySecret string
	CanaryInterval, Retention     time.Duration
	// FIPS and DualStack force those AWS endpoints.
	FIPS, DualStack bool
	// Registry receives the consumer's metrics.
	Registry prometheus.Registerer
	Logger   *slog.Logger
}
