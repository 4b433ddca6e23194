package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// mixedObjects are Secrets Manager and Parameter Store objects in one class.
const mixedObjects = `- objectName: node/db
  objectType: secretsmanager
  objectAlias: db.json
  jmesPath:
    - path: password
      objectAlias: db-password
- objectName: node/api-key
  objectType: secretsmanager
  objectAlias: api-key
- objectName: /node/host
  objectType: ssmparameter
  objectAlias: host
- objectName: /node/token
  objectType: ssmparameter
  objectAlias: token
`

var mixedWant = map[string]string{
	"db.json":     `{"username":"canary-node-user","password":"canary-node-db-pw"}`,
	"db-password": "canary-node-db-pw",
	"api-key":     "canary-node-api-key",
	"host":        "canary-node-host",
	"token":       "canary-node-token",
}

func wantFiles(want map[string]string) func(map[string]string) error {
	return func(got map[string]string) error {
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("file %s: got %d bytes, want %d (files %v)", k, len(got[k]), len(v), names(got))
			}
		}
		return nil
	}
}

// Scenario 1: a non-root pod with a read-only root filesystem reads its
// mounted files, Secrets Manager and Parameter Store mixed; the content is
// what the container itself printed.
func TestReadFiles(t *testing.T) {
	ns := namespace(t, "read")
	// No region: coffer takes the node's topology.kubernetes.io/region
	// label, which kubelet set, through the chart's RBAC.
	secretProviderClass(t, ns, "mixed", map[string]any{"objects": mixedObjects}, nil)
	pod := createPod(t, workloadPod(ns, "app", "mixed", "read", "/mnt/secrets"))
	pod = waitRunning(t, ns, pod.Name, 2*time.Minute)
	podFiles(t, pod, time.Minute, wantFiles(mixedWant))

	out, err := containerOutput(pod, "app")
	if err != nil {
		t.Fatal(err)
	}
	if got := out.line("UID "); got != "UID 65532 GID 65532 ROFS true" {
		t.Errorf("the container saw %q, want UID 65532 GID 65532 ROFS true", got)
	}
	// The termination message path is the other way out of the container
	// that needs no node address: kubelet reads it when the container ends.
	deletePod(t, ns, pod.Name)
}

// Scenario 2: the tokens are kubelet's, minted from the CSIDriver's
// tokenRequests (the driver chart's), and the fake's STS verified them
// against the apiserver's published keys: a ServiceAccount the role does
// not trust is refused by STS, and its pod does not start.
func TestKubeletMintedTokens(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	d, err := env.kube.StorageV1().CSIDrivers().Get(ctx, driverName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var auds []string
	for _, tr := range d.Spec.TokenRequests {
		auds = append(auds, tr.Audience)
	}
	if !strings.Contains(strings.Join(auds, ","), audSTS) {
		t.Fatalf("CSIDriver tokenRequests %v lack %s", auds, audSTS)
	}
	if d.Spec.RequiresRepublish == nil || !*d.Spec.RequiresRepublish {
		t.Error("CSIDriver does not require republish: rotation cannot work")
	}

	ns := namespace(t, "identity")
	secretProviderClass(t, ns, "api", map[string]any{"objects": "- objectName: node/api-key\n  objectType: secretsmanager\n"}, nil)
	mark := env.fake.LogSize()
	pod := waitRunning(t, ns, createPod(t, workloadPod(ns, "app", "api", "read", "/mnt/secrets")).Name, 2*time.Minute)
	podFiles(t, pod, time.Minute, nil)
	calls := env.fake.LogSince(mark)
	if !fakeCall(calls, "AssumeRoleWithWebIdentity", sa(ns, "app"), "ok") {
		t.Errorf("the fake's STS logged no successful AssumeRoleWithWebIdentity for %s:\n%s", sa(ns, "app"), calls)
	}

	// An untrusted ServiceAccount, with the same role annotation.
	serviceAccount(t, ns, "intruder")
	p := workloadPod(ns, "intruder", "api", "read", "/mnt/secrets")
	p.Spec.ServiceAccountName = "intruder"
	createPod(t, p)
	ev := waitEvent(t, ns, "intruder", "FailedMount", "AccessDenied", 2*time.Minute)
	if strings.Contains(ev, canaryPrefix) {
		t.Errorf("event carries a secret value: %s", ev)
	}
	if !fakeCall(env.fake.LogSince(mark), "AssumeRoleWithWebIdentity", sa(ns, "intruder"), "AccessDenied") {
		t.Errorf("the fake's STS did not refuse %s", sa(ns, "intruder"))
	}
}

// fakeCall reports whether the fake logged a call of op by the token
// subject with the outcome.
func fakeCall(log, op, subject, outcome string) bool {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "operation="+op) && strings.Contains(l, "subject="+subject) && strings.Contains(l, "outcome="+outcome) {
			return true
		}
	}
	return false
}

// waitEvent waits for an event of the pod with reason whose message
// contains want, and returns the message.
func waitEvent(t *testing.T, ns, pod, reason, want string, timeout time.Duration) string {
	t.Helper()
	var msg string
	err := poll(timeout, func(ctx context.Context) error {
		evs, err := env.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == reason && strings.Contains(e.Message, want) {
				msg = e.Message
				return nil
			}
		}
		return fmt.Errorf("no %s event containing %q", reason, want)
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %v\nevents:\n%s", ns, pod, err, events(ns, pod))
	}
	return msg
}

// Scenario 6: a misspelt key leaves the pod in ContainerCreating, with a
// FailedMount event that carries coffer's own message: the user's
// expression, and what to check.
func TestMisspeltKey(t *testing.T) {
	ns := namespace(t, "fail")
	secretProviderClass(t, ns, "typo", map[string]any{"objects": `- objectName: node/db
  objectType: secretsmanager
  jmesPath:
    - path: passwrod
      objectAlias: db-password
`}, nil)
	createPod(t, workloadPod(ns, "app", "typo", "read", "/mnt/secrets"))
	msg := waitEvent(t, ns, "app", "FailedMount", `"passwrod"`, 2*time.Minute)
	for _, want := range []string{"node/db", "case-sensitive"} {
		if !strings.Contains(msg, want) {
			t.Errorf("FailedMount message lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, canaryPrefix) {
		t.Errorf("FailedMount message carries a secret value: %s", msg)
	}
	p, err := env.kube.CoreV1().Pods(ns).Get(ctxFor(t, 10*time.Second), "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending || len(p.Status.ContainerStatuses) != 1 ||
		p.Status.ContainerStatuses[0].State.Waiting == nil || p.Status.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("pod is %s %+v, want Pending in ContainerCreating", p.Status.Phase, p.Status.ContainerStatuses)
	}
}

// secretValuesInLogs returns every line of the node's components and of
// the driver's and coffer's containers that contains a secret value.
func (c *cluster) secretValuesInLogs() string {
	var b strings.Builder
	check := func(path, text string) {
		for i, line := range strings.Split(text, "\n") {
			if strings.Contains(line, canaryPrefix) {
				if len(line) > 300 {
					line = line[:300] + "..."
				}
				fmt.Fprintf(&b, "%s:%d: %s\n", path, i+1, line)
			}
		}
	}
	for _, p := range c.g.Procs() {
		check(p.LogPath, p.LogSince(0))
	}
	logs, _ := filepath.Glob(filepath.Join(c.podLogs, releaseNS+"_*", "*", "*.log"))
	for _, l := range logs {
		data, err := os.ReadFile(l)
		if err == nil {
			check(l, string(data))
		}
	}
	return b.String()
}
