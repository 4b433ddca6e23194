package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Change events (docs/events.md) on the node: the fake's queue gets the
// announcements of every write, coffer-controller events runs as the chart
// deploys it, and coffer's DaemonSet watches the ledger ConfigMap.
const (
	eventsNS = "t-events"
	// eventsSA is the pod's ServiceAccount, with eventsAppRole: the fake's
	// log tells this pod's reads from those of every other pod on the node.
	eventsSA              = "reader"
	eventsQueue           = "coffer-events"
	eventsCanaryParameter = "/coffer/node/canary"
	eventsCanarySecret    = "coffer/node/canary"
	// eventsCanaryInterval is shorter than the driver's poll, so a remount
	// finds a canary proven after the previous remount's read (the rule's
	// condition on the pipeline), as a 30 s canary does for a 2 min poll.
	eventsCanaryInterval = 2 * time.Second
	eventsLedger         = "coffer-changes"
	eventsLease          = cofferRelease + "-events"
	// eventsQuiet is how long nothing changes while remounts go on: three
	// of the driver's polls, so at least two remounts.
	eventsQuiet = 3 * rotationPoll
	// ledgerSettle is provider/changes.Settle (this module does not link
	// coffer's): how long before a read the node must have held the
	// ledger the read is recorded under.
	ledgerSettle = 5 * time.Second
)

// eventsQueueURL is the queue's URL as SQS gives it (its region and
// account are the consumer's coverage); the consumer reaches the fake
// through AWS_ENDPOINT_URL, as every AWS client in the tier does.
var eventsQueueURL = "https://sqs." + nodeRegion + ".amazonaws.com/123456789012/" + eventsQueue

const eventsObjects = `- {objectName: node/events/db, objectType: secretsmanager, objectAlias: db}
- {objectName: node/events/api, objectType: secretsmanager, objectAlias: api}
- {objectName: /node/events/host, objectType: ssmparameter, objectAlias: host}
`

func eventsWant(api string) map[string]string {
	return map[string]string{"db": "canary-node-events-db", "api": api, "host": "canary-node-events-host"}
}

// eventsValues are the tier's values plus change events, as docs/events.md
// step 3 sets them: the queue, the canaries, and the consumer's IRSA role
// on its ServiceAccount (irsaWebhook gives its pod the credentials EKS's
// webhook would). One replica: the election is still the Lease's.
func (c *cluster) eventsValues() map[string]any {
	v := c.cofferValues(c.bins.cofferVersion)
	v["events"] = map[string]any{
		"enabled":  true,
		"queueURL": eventsQueueURL,
		"ledger":   eventsLedger,
		"canary": map[string]any{
			"parameter": eventsCanaryParameter, "secret": eventsCanarySecret, "interval": eventsCanaryInterval.String(),
		},
		"replicas": 1,
		// The SDK builds the web identity provider's STS client before it
		// reads AWS_ENDPOINT_URL, but it honours the per-service
		// variable there (aws-sdk-go-v2/config v1.33: resolveCredentials
		// runs before resolveBaseEndpoint).
		"extraEnv": []any{
			map[string]any{"name": "AWS_ENDPOINT_URL", "value": c.fakeURL},
			map[string]any{"name": "AWS_ENDPOINT_URL_STS", "value": c.fakeURL},
		},
		"serviceAccount": map[string]any{
			"annotations": map[string]any{irsaRoleAnnotation: roleARN(eventsConsumerRole)},
		},
	}
	return v
}

// withEvents turns change events on for this scenario alone, and back as
// the tier had it at the end. Not for the whole tier: the other scenarios
// keep testing the chart's default (events off), which is how coffer reads
// AWS without the AWS side of docs/events.md, and the consumer's canary
// would write the fake every eventsCanaryInterval throughout. Where the
// tier has coffer installed (a run of this scenario alone), this is an
// upgrade of the release and one back (two rollouts of the DaemonSet);
// where it has not (the whole tier, after TestSwitchFromAWSProvider), an
// install and an uninstall, which costs TestFlux nothing: it uninstalls
// coffer first anyway.
func withEvents(t *testing.T) {
	t.Helper()
	installed, err := env.helmInstalled(cofferRelease)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), helmTimeout+time.Minute)
		defer cancel()
		var err error
		if installed {
			err = env.upgradeCofferWith(ctx, env.cofferValues(env.bins.cofferVersion))
		} else if ok, _ := env.helmInstalled(cofferRelease); ok {
			err = env.uninstallCoffer()
		}
		if err != nil {
			t.Errorf("turning change events off: %v", err)
		}
		// The consumer made these, not Helm: a later install starts anew.
		if err := env.kube.CoreV1().ConfigMaps(releaseNS).Delete(ctx, eventsLedger, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the ledger: %v", err)
		}
		if err := env.kube.CoordinationV1().Leases(releaseNS).Delete(ctx, eventsLease, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("deleting the Lease: %v", err)
		}
	})
	ctx := ctxFor(t, helmTimeout+time.Minute)
	t0 := time.Now()
	if installed {
		err = env.upgradeCofferWith(ctx, env.eventsValues())
	} else {
		err = env.helmInstall(ctx, cofferRelease, env.cofferChart(), env.eventsValues())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("change events on (upgrade %t) in %s", installed, time.Since(t0).Round(time.Millisecond))
}

// TestChangeEvents: with the chart's events on, a running pod's remounts
// read nothing from AWS while nothing changes, and a change to one secret
// reaches the running container's file after reading that secret alone.
func TestChangeEvents(t *testing.T) {
	withEvents(t)
	consumer := eventsConsumer(t)
	mustLead(t, consumer)
	var live string
	if err := poll(2*time.Minute, func(ctx context.Context) error {
		m, err := nodeMetrics(ctx)
		if err != nil {
			return err
		}
		live = m
		if v, ok := metricValue(m, "coffer_events_live"); !ok || v != 1 {
			return fmt.Errorf("coffer_events_live %v (present %t)", v, ok)
		}
		return nil
	}); err != nil {
		t.Fatalf("the node never saw the pipeline live: %v\nnode's events metrics:\n%s\npods:\n%s", err, grepLines(live, "coffer_events_"), env.podReport(releaseNS))
	}
	// A value is read under the ledger the node held ledgerSettle before
	// the read; one read sooner after the node's first ledger is read
	// again at the next remount (verdict unknown). The node held it when
	// it said live.
	settled := time.Now().Add(ledgerSettle)

	ns := namespace(t, strings.TrimPrefix(eventsNS, "t-"))
	serviceAccountAs(t, ns, eventsSA, eventsAppRole)
	secretProviderClass(t, ns, "events", map[string]any{"objects": eventsObjects}, nil)
	p := workloadPod(ns, "app", "events", "read", "/mnt/secrets", "2s")
	p.Spec.ServiceAccountName = eventsSA
	time.Sleep(time.Until(settled))
	pod := waitRunning(t, ns, createPod(t, p).Name, 2*time.Minute)
	podFiles(t, pod, time.Minute, wantFiles(eventsWant("canary-node-events-api-1")))
	if reads := roleCalls(env.fake.LogSince(0), eventsAppRole); len(reads) == 0 {
		t.Fatal("the pod mounted its files, but the fake logged no read by its role")
	}

	// Nothing changes: the driver's remounts are answered from the node's
	// cache by the ledger's rule (coffer's TTL is half the poll, so not by
	// the TTL), and the fake sees no call of the pod's role.
	mark := env.fake.LogSize()
	before := scrape(t)
	time.Sleep(eventsQuiet)
	after := scrape(t)
	if calls := roleCalls(env.fake.LogSince(mark), eventsAppRole); len(calls) > 0 {
		t.Fatalf("nothing changed for %s, and the pod's role called AWS %d times: %v\nverdicts since: %s", eventsQuiet, len(calls), calls, verdictDeltas(before, after))
	}
	unchanged := counterDelta(before, after, "coffer_events_reads_total", `verdict="unchanged"`)
	if unchanged < 3 {
		t.Fatalf("in %s of remounts the rule answered %v values unchanged, want at least the pod's 3: verdicts %s", eventsQuiet, unchanged, verdictDeltas(before, after))
	}
	t.Logf("%s with nothing changed: no AWS call by the pod's role; verdicts %s", eventsQuiet, verdictDeltas(before, after))

	// One secret changes (as the administrator, as a rotation does): its
	// announcement names it, and the next remount reads it alone.
	mark = env.fake.LogSize()
	changed := time.Now()
	putSecret(ctxFor(t, 30*time.Second), t, "node/events/api", "canary-node-events-api-2")
	podFiles(t, pod, 6*(rotationPoll+cofferTTL), wantFiles(eventsWant("canary-node-events-api-2")))
	t.Logf("the new value reached the container's file %s after the change", time.Since(changed).Round(time.Second))
	calls := roleCalls(env.fake.LogSince(mark), eventsAppRole)
	read := false
	for _, c := range calls {
		// The role may not BatchGetSecretValue: a refused batch reads
		// nothing (and coffer then reads the secrets one by one).
		refusedBatch := c.operation == "BatchGetSecretValue" && c.outcome == "AccessDeniedException"
		if c.resources != "[node/events/api]" && !refusedBatch {
			t.Errorf("after node/events/api changed, the pod's role also called %s %s on %s", c.service, c.operation, c.resources)
		}
		read = read || c.outcome == "ok"
	}
	if !read {
		t.Errorf("the file changed, but the fake logged no read of node/events/api by the pod's role: %v", calls)
	}
	t.Logf("calls of the pod's role between the change and the file's update: %v", calls)

	if leaks := env.secretValuesInLogs(); leaks != "" {
		t.Errorf("secret values in component logs (the consumer's among them):\n%s", leaks)
	}
}

// eventsConsumer waits for coffer-controller events' pod to run and checks
// it runs as the chart deploys it: non-root, read-only root filesystem, no
// privilege escalation.
func eventsConsumer(t *testing.T) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	sel := "app.kubernetes.io/component=events,app.kubernetes.io/instance=" + cofferRelease
	if err := poll(2*time.Minute, func(ctx context.Context) error {
		list, err := env.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		for i, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				pod = &list.Items[i]
				return nil
			}
		}
		return fmt.Errorf("%d pods of %s, none running", len(list.Items), sel)
	}); err != nil {
		t.Fatalf("coffer-controller events: %v\n%s", err, env.podReport(releaseNS))
	}
	psc := pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("the consumer's pod may run as root: %+v", psc)
	}
	for _, c := range pod.Spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: not a read-only root filesystem without privilege escalation: %+v", c.Name, sc)
		}
	}
	for _, st := range pod.Status.ContainerStatuses {
		if st.RestartCount > 0 {
			t.Errorf("container %s restarted %d times\n%s", st.Name, st.RestartCount, env.podReport(releaseNS))
		}
	}
	return pod
}

// mustLead waits until the consumer holds its Lease (client-go's identity:
// the pod's host name and a random suffix) and has logged that it leads.
func mustLead(t *testing.T, consumer *corev1.Pod) {
	t.Helper()
	if err := poll(time.Minute, func(ctx context.Context) error {
		l, err := env.kube.CoordinationV1().Leases(releaseNS).Get(ctx, eventsLease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h := l.Spec.HolderIdentity; h == nil || !strings.HasPrefix(*h, consumer.Name+"_") {
			return fmt.Errorf("Lease %s held by %v, not pod %s", eventsLease, l.Spec.HolderIdentity, consumer.Name)
		}
		out, err := containerOutput(consumer, "events")
		if err != nil {
			return err
		}
		for _, l := range out.lines {
			if strings.Contains(l, "leading: consuming change events") {
				return nil
			}
		}
		return errors.New("the consumer has not logged that it leads")
	}); err != nil {
		t.Fatalf("coffer-controller events did not elect itself: %v\n%s", err, env.podReport(releaseNS))
	}
}

// nodeMetrics scrapes coffer's node pod (the one node's DaemonSet pod).
func nodeMetrics(ctx context.Context) (string, error) {
	ds, err := env.kube.AppsV1().DaemonSets(releaseNS).Get(ctx, cofferRelease, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	pods, err := env.kube.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(ds.Spec.Selector)})
	if err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Status.PodIP+":8080/metrics", nil)
		if err != nil {
			return "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET /metrics of %s: %s", p.Name, resp.Status)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("no running pod of DaemonSet %s", cofferRelease)
}

func scrape(t *testing.T) string {
	t.Helper()
	m, err := nodeMetrics(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// metricValue sums the samples of name (Prometheus' text format) whose
// labels contain every one of labels (`key="value"`); ok is false when
// there is none.
func metricValue(text, name string, labels ...string) (sum float64, ok bool) {
	for _, l := range strings.Split(text, "\n") {
		series, value, found := strings.Cut(l, " ")
		if !found || strings.HasPrefix(l, "#") {
			continue
		}
		n, lbls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		match := true
		for _, want := range labels {
			match = match && strings.Contains(lbls, want)
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && match {
			sum, ok = sum+v, true
		}
	}
	return sum, ok
}

func counterDelta(before, after, name string, labels ...string) float64 {
	a, _ := metricValue(after, name, labels...)
	b, _ := metricValue(before, name, labels...)
	return a - b
}

// verdictDeltas says how many times the rule gave each verdict between two
// scrapes.
func verdictDeltas(before, after string) string {
	var out []string
	for _, v := range []string{"unchanged", "changed", "not_proven", "too_old", "not_covered", "unknown"} {
		if d := counterDelta(before, after, "coffer_events_reads_total", `verdict="`+v+`"`); d != 0 {
			out = append(out, fmt.Sprintf("%s +%v", v, d))
		}
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// fakeCallLine is one call the fake logged (its "call" lines: names,
// never values).
type fakeCallLine struct {
	service, operation, outcome, resources string
}

func (c fakeCallLine) String() string {
	return c.service + " " + c.operation + " " + c.resources + " " + c.outcome
}

var logfmtPair = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

// roleCalls are the Secrets Manager and Parameter Store calls the fake
// logged under role (credentials from assuming it), in log's order.
func roleCalls(log, role string) []fakeCallLine {
	var out []fakeCallLine
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "msg=call ") {
			continue
		}
		kv := map[string]string{}
		for _, m := range logfmtPair.FindAllStringSubmatch(l, -1) {
			v := m[2]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			kv[m[1]] = v
		}
		if !strings.Contains(kv["identity"], ":assumed-role/"+role+"/") {
			continue
		}
		if s := kv["service"]; s == "secretsmanager" || s == "ssm" {
			out = append(out, fakeCallLine{service: s, operation: kv["operation"], outcome: kv["outcome"], resources: kv["resources"]})
		}
	}
	return out
}
