package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/coffer-csi/coffer/provider/changes"
	"github.com/coffer-csi/coffer/tests/fakeaws"
)

// configMapServer is an API server that keeps the ConfigMaps of one
// namespace, as far as the ledger's writes need.
type configMapServer struct {
	mu  sync.Mutex
	cms map[string]*corev1.ConfigMap
	rv  int
}

func (s *configMapServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const prefix = "/api/v1/namespaces/coffer/configmaps"
	name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	status := func(code int, reason metav1.StatusReason) {
		reply(code, metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: "Failure", Reason: reason, Code: int32(code)})
	}
	if !strings.HasPrefix(r.URL.Path, prefix) {
		status(http.StatusNotFound, metav1.StatusReasonNotFound)
		return
	}
	var in corev1.ConfigMap
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &in); err != nil {
			status(http.StatusBadRequest, metav1.StatusReasonBadRequest)
			return
		}
		s.rv++
		in.ResourceVersion = strconv.Itoa(s.rv)
		in.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
	}
	switch {
	case r.Method == http.MethodGet && s.cms[name] != nil:
		reply(http.StatusOK, s.cms[name])
	case r.Method == http.MethodPost && s.cms[in.Name] == nil:
		s.cms[in.Name] = &in
		reply(http.StatusCreated, &in)
	case r.Method == http.MethodPut && s.cms[name] != nil:
		s.cms[name] = &in
		reply(http.StatusOK, &in)
	default:
		status(http.StatusNotFound, metav1.StatusReasonNotFound)
	}
}

func (s *configMapServer) ledger() *changes.Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	cm := s.cms["coffer-changes"]
	if cm == nil {
		return nil
	}
	l, err := changes.Decode([]byte(cm.Data[changes.LedgerKey]))
	if err != nil {
		return nil
	}
	return l
}

// TestEventsRuns: coffer-controller events, configured as the docs say
// for another endpoint (AWS_ENDPOINT_URL, AWS_REGION), publishes the
// ledger of the queue's account and region, proves the canary, records a
// change, and stops cleanly when its context ends.
func TestEventsRuns(t *testing.T) {
	srv, ts := fakeaws.NewTestServer(t)
	srv.AddIdentity(fakeaws.AllowAll("AKIDEVENTS", "events-secret"))
	if err := srv.AddQueue("eu-west-1", fakeaws.Queue{Name: "coffer-events", EventSources: []string{fakeaws.SourceSSM, fakeaws.SourceSecretsManager, fakeaws.SourceIAM}}); err != nil {
		t.Fatal(err)
	}
	srv.PutSecretString("eu-west-1", "coffer/canary", "canary")
	api := &configMapServer{cms: map[string]*corev1.ConfigMap{}}
	apiTS := httptest.NewServer(api)
	t.Cleanup(apiTS.Close)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+apiTS.URL+`"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": ts.URL, "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDEVENTS", "AWS_SECRET_ACCESS_KEY": "events-secret",
		"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
	} {
		t.Setenv(k, v)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- RunController(ctx, []string{"events", "--queue-url", srv.QueueURL(ts.URL, "coffer-events"), "--kubeconfig", kubeconfig,
			"--ledger-namespace", "coffer", "--leader-elect=false", "--metrics-addr="}, io.Discard, &stderr, ControllerParts{})
	}()
	waitFor := func(what string, cond func(*changes.Ledger) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for l := api.ledger(); l == nil || !cond(l); l = api.ledger() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			<-time.After(10 * time.Millisecond)
		}
	}
	waitFor("the canary is proven", func(l *changes.Ledger) bool { return !l.Proof.Written.IsZero() })
	if l := api.ledger(); len(l.Covers) != 1 || l.Covers[0] != (changes.Coverage{Account: fakeaws.DefaultAccountID, Region: "eu-west-1"}) {
		t.Errorf("covers %+v", l.Covers)
	}
	srv.PutParameter("eu-west-1", "/app/db", "v1", fakeaws.TypeString)
	want := changes.Parameter(fakeaws.DefaultAccountID, "eu-west-1", "/app/db")[0]
	waitFor("the change is published", func(l *changes.Ledger) bool {
		for _, e := range l.Entries {
			if e.Subject == want {
				return true
			}
		}
		return false
	})
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}
