package e2e

// What the sync scenarios wait for and check: Secrets, classes, events,
// status and logs.
import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func getSecret(ctx context.Context, t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := env.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret %s/%s: %v", ns, name, err)
	}
	return s
}

func getSPC(ctx context.Context, t *testing.T, ns, name string) metav1.Object {
	t.Helper()
	u, err := env.dyn.Resource(gvrSPC).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// waitSecretData waits until Secret ns/name holds exactly want.
func waitSecretData(ctx context.Context, t *testing.T, ns, name string, want map[string]string) *corev1.Secret {
	t.Helper()
	var s *corev1.Secret
	eventually(ctx, t, 30*time.Second, "Secret "+name, func(ctx context.Context) error {
		var err error
		if s, err = env.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		got := map[string]string{}
		for k, v := range s.Data {
			got[k] = string(v)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("Secret %s has keys %s, not yet the expected values", name, keys(got))
		}
		return nil
	})
	return s
}

func waitSecretGone(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	eventually(ctx, t, 60*time.Second, "Secret "+name+" gone", func(ctx context.Context) error {
		_, err := env.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("secret %s still exists", name)
	})
}

// waitEvent waits for an Event on SecretProviderClass ns/spc.
func waitEvent(ctx context.Context, t *testing.T, ns, spc, typ, reason, msg string) {
	t.Helper()
	waitInvolvedEvent(ctx, t, ns, "SecretProviderClass", spc, typ, reason, msg)
}

// waitInvolvedEvent waits for an Event about the object kind ns/name.
func waitInvolvedEvent(ctx context.Context, t *testing.T, ns, kind, name, typ, reason, msg string) {
	t.Helper()
	eventually(ctx, t, 30*time.Second, fmt.Sprintf("%s event %s on %s %s", typ, reason, kind, name), func(ctx context.Context) error {
		list, err := env.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=" + kind + ",involvedObject.name=" + name})
		if err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Type == typ && e.Reason == reason && strings.Contains(e.Message, msg) {
				t.Logf("event on %s %s (from %s): %s %s: %s", kind, name, e.Source.Component, e.Type, e.Reason, e.Message)
				return nil
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
		return fmt.Errorf("events so far: %q", seen)
	})
}

// waitStatus waits until the controller's status annotation on the class
// contains every part.
func waitStatus(ctx context.Context, t *testing.T, ns, spc string, parts ...string) {
	t.Helper()
	eventually(ctx, t, 30*time.Second, "status of "+spc, func(ctx context.Context) error {
		u, err := env.dyn.Resource(gvrSPC).Namespace(ns).Get(ctx, spc, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := u.GetAnnotations()[annStatus]
		for _, p := range parts {
			if !strings.Contains(st, p) {
				return fmt.Errorf("status %s lacks %s", st, p)
			}
		}
		return nil
	})
}

// syncTimes is the controller's lastSyncTime of the class's Secrets.
func syncTimes(ctx context.Context, t *testing.T, ns, spc string) string {
	t.Helper()
	u, err := env.dyn.Resource(gvrSPC).Namespace(ns).Get(ctx, spc, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := u.GetAnnotations()[annStatus]
	if i := strings.Index(st, `"lastSyncTime":"`); i >= 0 {
		return st[i : i+len(`"lastSyncTime":"`)+20]
	}
	return ""
}

func waitLog(ctx context.Context, t *testing.T, p *process, mark int64, text string) {
	t.Helper()
	eventually(ctx, t, 20*time.Second, p.Name+" logging "+text, func(context.Context) error {
		if strings.Contains(p.LogSince(mark), text) {
			return nil
		}
		return fmt.Errorf("not logged yet")
	})
}

// checkSyncLog fails on a warning that says coffer lacks a permission or
// could not finish a write, and shows the other warnings of the sync.
func checkSyncLog(t *testing.T, p *process, mark int64) {
	for _, line := range strings.Split(p.LogSince(mark), "\n") {
		if !strings.Contains(line, "level=WARN") {
			continue
		}
		if strings.Contains(line, "RBAC") || strings.Contains(line, "ownership") || strings.Contains(line, "forbidden") {
			t.Errorf("%s: %s", p.Name, line)
		} else if strings.Contains(line, "secret sync") {
			t.Logf("%s: %s", p.Name, line)
		}
	}
}

// checkNoValuesInMetadata fails if a value reached an Event, an annotation
// or a label in namespace ns.
func checkNoValuesInMetadata(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	events, err := env.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, canaryPrefix) {
			t.Errorf("event %s %s holds a secret value: %s", e.Reason, e.InvolvedObject.Name, e.Message)
		}
	}
	secrets, err := env.kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	for _, s := range secrets.Items {
		if strings.Contains(fmt.Sprint(s.Annotations, s.Labels), canaryPrefix) {
			t.Errorf("Secret %s metadata holds a secret value", s.Name)
		}
	}
	spcs, err := env.dyn.Resource(gvrSPC).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	for _, u := range spcs.Items {
		if strings.Contains(fmt.Sprint(u.GetAnnotations()), canaryPrefix) {
			t.Errorf("SecretProviderClass %s annotations hold a secret value", u.GetName())
		}
	}
}

func patchFinalizers(ctx context.Context, t *testing.T, ns, name string, finalizers []string) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": finalizers}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.kube.CoreV1().Secrets(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
