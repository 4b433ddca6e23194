package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ledgerOnAPI is what the test reads of the ledger's ConfigMap.
type ledgerOnAPI struct {
	Seq   uint64 `json:"seq"`
	Proof struct {
		Written time.Time `json:"written"`
	} `json:"proof"`
	Entries []struct {
		Seq  uint64 `json:"s"`
		Kind string `json:"k"`
		Name string `json:"n"`
	} `json:"entries"`
}

func readLedger(ctx context.Context) (ledgerOnAPI, string, error) {
	var l ledgerOnAPI
	cm, err := env.kube.CoreV1().ConfigMaps(cofferNamespace).Get(ctx, ledgerName, metav1.GetOptions{})
	if err != nil {
		return l, "", err
	}
	err = json.Unmarshal([]byte(cm.Data["ledger.json"]), &l)
	return l, string(cm.UID), err
}

// mountedLines are coffer serve's "mounted" log lines for pod since mark:
// each says how many AWS calls the mount made (awsCalls).
var awsCallsField = regexp.MustCompile(`\bawsCalls=(\d+)`)

func mountsOf(since int64, pod string) []string {
	var out []string
	for _, line := range strings.Split(env.coffer.LogSince(since), "\n") {
		if strings.Contains(line, "msg=mounted") && strings.Contains(line, "pod="+pod+" ") {
			if m := awsCallsField.FindStringSubmatch(line); m != nil {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// 16. Change events on the real API server: coffer-controller events, with
// its own ServiceAccount, RBAC and Lease, turns the AWS fake's SQS queue into
// the ledger's ConfigMap; coffer serve's one watch of that ConfigMap lets the
// driver's remounts of unchanged objects be answered with no AWS call, and a
// change announced by AWS is read, alone, at the next remount.
func TestChangeEvents(t *testing.T) {
	const ns = "e2e-events"
	ctx := setup(t, ns)
	consumer, err := env.startConsumer(ctx, "coffer-events")
	if err != nil {
		t.Fatalf("starting coffer-controller events: %v", err)
	}
	t.Cleanup(func() { consumer.Stop(10 * time.Second) })
	_, uid, err := readLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the consumer holds the Lease %s/%s and published the ledger (ConfigMap uid %s)", cofferNamespace, eventsLease, uid)

	createServiceAccount(ctx, t, ns, "app", roleARN("events-app"))
	createSPC(ctx, t, ns, spcSpec{name: "evented", params: map[string]string{"region": eventsRegion, "objects": `
- {objectName: events/db, objectType: secretsmanager, objectAlias: db}
- {objectName: events/api, objectType: secretsmanager, objectAlias: api}
- {objectName: /events/host, objectType: ssmparameter, objectAlias: host}
`}})
	// coffer serve has held the ledger for longer than the rule's settle
	// time (5 s) once the first mount reads AWS.
	time.Sleep(6 * time.Second)
	pod := createPod(ctx, t, ns, "app-0", "app", "evented")
	pod.mount(ctx)
	read := time.Now()
	before := map[string]wantFile{
		"db":   {"canary-events-db-1", 0o644},
		"api":  {"canary-events-api-1", 0o644},
		"host": {"canary-events-host-1", 0o644},
	}
	pod.checkFiles(before)
	eventually(ctx, t, 20*time.Second, "a canary written after the first mount", func(ctx context.Context) error {
		l, _, err := readLedger(ctx)
		if err != nil {
			return err
		}
		if !l.Proof.Written.After(read.Add(eventsSkew)) {
			return fmt.Errorf("the newest proof was written at %v, before the mount at %v (plus the skew)", l.Proof.Written, read)
		}
		return nil
	})
	time.Sleep(time.Second) // the watch delivers the ledger to coffer serve

	// The driver's remounts, nothing changed: no AWS call.
	mark := env.coffer.LogSize()
	pod.republish(ctx)
	pod.republish(ctx)
	pod.checkFiles(before)
	if got := mountsOf(mark, ns+"/app-0"); len(got) != 2 || got[0] != "0" || got[1] != "0" {
		t.Fatalf("remounts with nothing changed made AWS calls %v, want [0 0]\n%s", got, env.coffer.LogSince(mark))
	}

	// AWS announces a change to one secret: the next remount reads it alone.
	putSecretString(ctx, t, eventsRegion, "events/api", "canary-events-api-2")
	eventually(ctx, t, 20*time.Second, "the change's entry in the ledger", func(ctx context.Context) error {
		l, _, err := readLedger(ctx)
		if err != nil {
			return err
		}
		for _, e := range l.Entries {
			if e.Kind == "secret" && e.Name == "events/api" {
				return nil
			}
		}
		return fmt.Errorf("no entry for events/api in %+v", l.Entries)
	})
	time.Sleep(time.Second) // the watch delivers it
	mark = env.coffer.LogSize()
	pod.republish(ctx)
	after := map[string]wantFile{
		"db":   {"canary-events-db-1", 0o644},
		"api":  {"canary-events-api-2", 0o644},
		"host": {"canary-events-host-1", 0o644},
	}
	pod.checkFiles(after)
	if got := mountsOf(mark, ns+"/app-0"); len(got) != 1 || got[0] != "1" {
		t.Fatalf("the remount after the announced change made AWS calls %v, want [1] (the changed secret alone)\n%s", got, env.coffer.LogSince(mark))
	}

	// The consumer stops: coffer serve falls back once the newest proof is
	// older than --event-proof-max-age; not waited for here (2 minutes), the
	// socket suite shows it on a moved clock. A new consumer continues the
	// ledger: same object, later sequences.
	l1, uid1, err := readLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	consumer.Stop(10 * time.Second)
	next, err := env.startConsumer(ctx, "coffer-events-2")
	if err != nil {
		t.Fatalf("restarting coffer-controller events: %v", err)
	}
	t.Cleanup(func() { next.Stop(10 * time.Second) })
	putParameter(ctx, t, eventsRegion, "/events/host", "canary-events-host-2", ssmtypes.ParameterTypeString)
	eventually(ctx, t, 20*time.Second, "the restarted consumer's entry", func(ctx context.Context) error {
		l2, uid2, err := readLedger(ctx)
		if err != nil {
			return err
		}
		if uid2 != uid1 || l2.Seq <= l1.Seq {
			return fmt.Errorf("ledger uid %s seq %d after the restart; want uid %s and a sequence past %d", uid2, l2.Seq, uid1, l1.Seq)
		}
		for _, e := range l2.Entries {
			if e.Kind == "parameter" && e.Name == "events/host" && e.Seq > l1.Seq {
				return nil
			}
		}
		return fmt.Errorf("no new entry for /events/host")
	})
	time.Sleep(time.Second)
	pod.republish(ctx)
	pod.checkFiles(map[string]wantFile{
		"db":   {"canary-events-db-1", 0o644},
		"api":  {"canary-events-api-2", 0o644},
		"host": {"canary-events-host-2", 0o644},
	})
}
