package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// syncPeakBound is the most resident memory coffer-controller sync may ever have
// reached once the hostile classes below were refused: the chart's memory
// limit for the controller.
const syncPeakBound = 256 << 20

// 14. A hostile tenant cannot stop coffer-controller sync: classes written to crash or
// exhaust the controller (nesting deep enough to overflow a parser's stack,
// formats padded per element, composite arguments, outputs never written)
// each fail alone, reported on their own class with a Warning Event and
// the status annotation, while the controller lives, stays within its
// memory limit, and keeps syncing another namespace's class, before and
// after.
func TestHostileClassesDoNotStopSync(t *testing.T) {
	const ns, benignNS, region = "e2e-hostile", "e2e-benign", "us-east-1"
	ctx := setup(t, ns)
	setup(t, benignNS)
	// A JSON list of 2,000 short strings, and a 64 KiB value: small inputs
	// that the attacks below multiply.
	list := make([]string, 2000)
	for i := range list {
		list[i] = strconv.Quote(fmt.Sprintf("canary-h%d", i))
	}
	createSecret(ctx, t, region, "hx/list", "["+strings.Join(list, ",")+"]")
	createSecret(ctx, t, region, "hx/big", `{"k":"canary-`+strings.Repeat("x", 64<<10)+`"}`)
	createSecret(ctx, t, region, "hx/benign", "canary-benign-1")
	createServiceAccount(ctx, t, ns, "attacker", roleARN("hostile-attacker"))
	createServiceAccount(ctx, t, benignNS, "reader", roleARN("hostile-benign"))
	t.Cleanup(func() { checkNoValuesInMetadata(t, ns); checkNoValuesInMetadata(t, benignNS) })

	benign := func(name, secret string) {
		t.Helper()
		createSPC(ctx, t, benignNS, spcSpec{name: name, params: map[string]string{"region": region,
			"objects":     "- {objectName: hx/benign, objectType: secretsmanager, objectAlias: b}",
			"syncSecrets": fmt.Sprintf("- {secretName: %s, refreshInterval: 2s, serviceAccountName: reader, data: [{key: b, objectName: b}]}", secret),
		}})
	}
	benign("before", "benign-before")
	waitSecretData(ctx, t, benignNS, "benign-before", map[string]string{"b": "canary-benign-1"})

	deep := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	unwritten := make([]string, 256)
	for i := range unwritten {
		unwritten[i] = fmt.Sprintf("{path: '[@,@,@,@,@,@,@,@]', objectAlias: u%d, writeFile: false}", i)
	}
	// The same within every cap: 64 entries an object, four objects.
	var within strings.Builder
	for o := range 4 {
		fmt.Fprintf(&within, "- {objectName: hx/big, objectType: secretsmanager, objectAlias: w%d, jmesPath: [%s]}\n", o,
			strings.ReplaceAll(strings.Join(unwritten[64*o:64*(o+1)], ", "), "objectAlias: u", fmt.Sprintf("objectAlias: w%d-", o)))
	}
	objects := func(extra string) string {
		return "- {objectName: hx/list, objectType: secretsmanager, objectAlias: list}\n" +
			"- {objectName: hx/big, objectType: secretsmanager, objectAlias: big}\n" + extra
	}
	hostile := map[string]map[string]string{
		// A jmesPath expression 200,000 levels deep: the parser's stack.
		"deep-path": {"objects": objects("- {objectName: hx/big, objectType: secretsmanager, objectAlias: deep, jmesPath: [{path: '" +
			deep("(", "k", ")", 200_000) + "', objectAlias: d}]}"),
			"syncSecrets": "- {secretName: deep-path, serviceAccountName: attacker, data: [{key: d, objectName: d}]}"},
		// A template 100,000 parentheses deep.
		"deep-template": {"objects": objects(""),
			"syncSecrets": "- secretName: deep-template\n  serviceAccountName: attacker\n  dataFrom: [{extract: big}]\n  template: {data: {x: '{{ " +
				deep("(", ".k", ")", 100_000) + " }}'}}"},
		// A width fmt pads every element of a 2,000-element list with.
		"wide": {"objects": objects(""),
			"syncSecrets": "- secretName: wide\n  serviceAccountName: attacker\n  data: [{key: list, objectName: list}]\n  template: {data: {x: '" +
				strings.Repeat(`{{ printf "%4000v" (fromJson .list) }}`, 64) + "'}}"},
		// The data map, 64 KiB, printed as a composite many times over.
		"composite": {"objects": objects(""),
			"syncSecrets": "- secretName: composite\n  serviceAccountName: attacker\n  data: [{key: big, objectName: big}]\n  template: {data: {x: '" +
				strings.Repeat(`{{ print . . . . . . . . . . . . . . . . }}{{ html . . . . . . . . }}{{ printf "%v%v%v%v" . . . . }}`, 64) + "'}}"},
		// The width at its cap, per element of the list: within every
		// limit, refused by the accounting (or the evaluator's memory).
		"wide-within": {"objects": objects(""),
			"syncSecrets": "- secretName: wide-within\n  serviceAccountName: attacker\n  data: [{key: list, objectName: list}]\n  template: {data: {x: '" +
				strings.Repeat(`{{ printf "%256v" (fromJson .list) }}`, 64) + "'}}"},
		"unwritten-within": {"objects": objects(within.String()),
			"syncSecrets": "- {secretName: unwritten-within, serviceAccountName: attacker, data: [{key: w0-0, objectName: w0-0}]}"},
		// 256 entries never written, each multiplying a 64 KiB document.
		"unwritten": {"objects": objects("- {objectName: hx/big, objectType: secretsmanager, objectAlias: u, jmesPath: [" + strings.Join(unwritten, ", ") + "]}"),
			"syncSecrets": "- {secretName: unwritten, serviceAccountName: attacker, data: [{key: u0, objectName: u0}]}"},
	}
	for name, params := range hostile {
		params["region"] = region
		createSPC(ctx, t, ns, spcSpec{name: name, params: params})
	}
	for name := range hostile {
		t.Run(name, func(t *testing.T) {
			waitWarning(ctx, t, ns, name)
			waitStatus(ctx, t, ns, name, `"ready":"False"`)
			if _, err := env.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
				t.Errorf("Secret %s was written from a hostile class", name)
			}
		})
	}

	benign("after", "benign-after")
	waitSecretData(ctx, t, benignNS, "benign-after", map[string]string{"b": "canary-benign-1"})
	putSecretString(ctx, t, region, "hx/benign", "canary-benign-2")
	// The class synced before the attack keeps being refreshed.
	waitSecretData(ctx, t, benignNS, "benign-before", map[string]string{"b": "canary-benign-2"})

	if exited, err := env.cofferSync.Exited(); exited {
		t.Fatalf("coffer-controller sync exited during the attack: %v", err)
	}
	peak, err := peakRSS(env.cofferSync.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("coffer-controller sync's peak resident memory: %d MiB", peak>>20)
	if peak > syncPeakBound {
		t.Errorf("coffer-controller sync's peak resident memory is %d MiB, over the %d MiB bound", peak>>20, syncPeakBound>>20)
	}
}

// waitWarning waits for a Warning Event on a SecretProviderClass.
func waitWarning(ctx context.Context, t *testing.T, ns, spc string) {
	t.Helper()
	eventually(ctx, t, 60*time.Second, "a Warning event on "+spc, func(ctx context.Context) error {
		list, err := env.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=SecretProviderClass,involvedObject.name=" + spc})
		if err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Type == corev1.EventTypeWarning {
				t.Logf("%s: %s: %.300s", spc, e.Reason, e.Message)
				return nil
			}
		}
		return fmt.Errorf("%d events, none a Warning", len(list.Items))
	})
}

// peakRSS reads a process's peak resident set size (VmHWM).
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
