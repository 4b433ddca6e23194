package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
)

// electionFlags are the --leader-elect* flags of the controller's
// commands, each competing for its own Lease.
type electionFlags struct {
	leaderElect    bool
	leaseNamespace string
	leaseName      string
	leaseDuration  time.Duration
	renewDeadline  time.Duration
	retryPeriod    time.Duration
}

// register adds the flags; leaseName is the Lease's default name, and
// what the one replica in charge does (e.g. "syncs").
func (c *electionFlags) register(fs *pflag.FlagSet, leaseName, does string) {
	fs.BoolVar(&c.leaderElect, "leader-elect", true, "run only while holding a Lease, so that one of several replicas "+does)
	fs.StringVar(&c.leaseNamespace, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease (default $POD_NAMESPACE, else the in-cluster namespace)")
	fs.StringVar(&c.leaseName, "leader-election-id", leaseName, "name of the Lease")
	fs.DurationVar(&c.leaseDuration, "leader-election-lease-duration", 15*time.Second, "how long a leader's Lease lasts without renewal")
	fs.DurationVar(&c.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives up")
	fs.DurationVar(&c.retryPeriod, "leader-election-retry-period", 2*time.Second, "how often candidates try to acquire or renew the Lease")
}

// jitterFactor is client-go's leaderelection.JitterFactor: a candidate
// waits up to 2.2 retry periods between tries, so the renew deadline must
// leave room for more than one (client-go refuses a shorter one).
const jitterFactor = 1.2

// validate checks the election's timings as client-go's
// leaderelection.NewLeaderElector does, and that the Lease duration is
// whole seconds: the Lease records seconds, and others judge it by them.
// Without --leader-elect there is nothing to check.
func (c *electionFlags) validate() []error {
	if !c.leaderElect {
		return nil
	}
	var errs []error
	if msgs := validation.IsDNS1123Subdomain(c.leaseName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--leader-election-id %q is not a Lease name (%s)", c.leaseName, strings.Join(msgs, "; ")))
	}
	if !(c.retryPeriod > 0 && c.renewDeadline > time.Duration(jitterFactor*float64(c.retryPeriod)) && c.renewDeadline < c.leaseDuration) {
		errs = append(errs, errors.New("leader election needs 0 < 1.2 x --leader-election-retry-period < --leader-election-renew-deadline < --leader-election-lease-duration"))
	}
	if c.leaseDuration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("--leader-election-lease-duration %v: use whole seconds (the Lease records seconds)", c.leaseDuration))
	}
	return errs
}

// run runs fn: at once without --leader-elect, else while this process
// holds the Lease (parts.Elect), logging when it leads (doing) and stops.
func (c *electionFlags) run(ctx context.Context, parts ControllerParts, rc *rest.Config, doing string, fn func(context.Context) error, log *slog.Logger) error {
	if !c.leaderElect {
		return fn(ctx)
	}
	election, err := c.election()
	if err != nil {
		return err
	}
	lease := election.Namespace + "/" + election.Name
	log.Info("waiting for the Lease", "lease", lease, "identity", election.Identity)
	return parts.Elect(ctx, rc, election, func(ctx context.Context) error {
		log.Info("leading: "+doing, "lease", lease, "identity", election.Identity)
		err := fn(ctx)
		log.Info("stopped leading", "lease", lease, "identity", election.Identity)
		return err
	}, log.With("lease", lease))
}

// Election is the Lease election --leader-election-* configure, and the
// identity this process competes as.
type Election struct {
	Namespace, Name, Identity                 string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// election is the Lease election the flags configure. The identity is the
// host name (the pod's) and a random suffix, so that a restarted process
// never renews the Lease its predecessor held.
func (c *electionFlags) election() (Election, error) {
	ns := c.leaseNamespace
	if ns == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return Election{}, errors.New("leader election needs a namespace for its Lease: set --leader-election-namespace or POD_NAMESPACE (or --leader-elect=false)")
		}
		ns = strings.TrimSpace(string(b))
	}
	host, _ := os.Hostname()
	return Election{
		Namespace: ns, Name: c.leaseName, Identity: host + "_" + rand.Text()[:8],
		LeaseDuration: c.leaseDuration, RenewDeadline: c.renewDeadline, RetryPeriod: c.retryPeriod,
	}, nil
}
