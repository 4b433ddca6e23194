package controller

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
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
	"k8s.io/client-go/rest"

	"github.com/coffer-csi/coffer/cli"
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

// eventsEnv is the AWS fake with the events queue and the canary secret
// in eu-west-1, an API server keeping ConfigMaps, and the environment
// coffer-controller events reads them from (AWS_ENDPOINT_URL,
// AWS_REGION, a kubeconfig).
type eventsEnv struct {
	srv        *fakeaws.Server
	queueURL   string
	api        *configMapServer
	kubeconfig string
}

func newEventsEnv(t *testing.T) *eventsEnv {
	t.Helper()
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
		"POD_NAMESPACE": "coffer",
	} {
		t.Setenv(k, v)
	}
	return &eventsEnv{srv: srv, queueURL: srv.QueueURL(ts.URL, "coffer-events"), api: api, kubeconfig: kubeconfig}
}

// waitFor waits until the published ledger meets cond.
func (e *eventsEnv) waitFor(t *testing.T, what string, cond func(*changes.Ledger) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for l := e.api.ledger(); l == nil || !cond(l); l = e.api.ledger() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// TestEventsRuns: coffer-controller events, configured as the docs say
// for another endpoint (AWS_ENDPOINT_URL, AWS_REGION), publishes the
// ledger of the queue's account and region in $POD_NAMESPACE, proves the
// canary, records a change, and stops cleanly when its context ends.
func TestEventsRuns(t *testing.T) {
	e := newEventsEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		done <- cli.RunController(ctx, []string{"events", "--queue-url", e.queueURL, "--kubeconfig", e.kubeconfig,
			"--leader-elect=false", "--metrics-addr="}, io.Discard, &stderr, cli.ControllerParts{Consumer: Consumer})
	}()
	e.waitFor(t, "the canary is proven", func(l *changes.Ledger) bool { return !l.Proof.Written.IsZero() })
	if l := e.api.ledger(); len(l.Covers) != 1 || l.Covers[0] != (changes.Coverage{Account: fakeaws.DefaultAccountID, Region: "eu-west-1"}) {
		t.Errorf("covers %+v", l.Covers)
	}
	e.srv.PutParameter("eu-west-1", "/app/db", "v1", fakeaws.TypeString)
	want := changes.Parameter(fakeaws.DefaultAccountID, "eu-west-1", "/app/db")[0]
	e.waitFor(t, "the change is published", func(l *changes.Ledger) bool {
		for _, en := range l.Entries {
			if en.Subject == want {
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

// TestEventsElects: with --leader-elect (the default), the consumer runs
// only inside the election, for its own Lease coffer-events in
// $POD_NAMESPACE, with the election flags' timings.
func TestEventsElects(t *testing.T) {
	e := newEventsEnv(t)
	var got cli.Election
	elect := func(ctx context.Context, _ *rest.Config, el cli.Election, fn func(context.Context) error, _ *slog.Logger) error {
		got = el
		if l := e.api.ledger(); l != nil {
			t.Error("the consumer published before it was elected")
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- fn(ctx) }()
		e.waitFor(t, "the elected consumer publishes", func(l *changes.Ledger) bool { return !l.Proof.Written.IsZero() })
		cancel()
		return <-done
	}
	var stderr strings.Builder
	code := cli.RunController(context.Background(), []string{"events", "--queue-url", e.queueURL, "--kubeconfig", e.kubeconfig,
		"--metrics-addr=", "--leader-election-lease-duration=20s"}, io.Discard, &stderr, cli.ControllerParts{Elect: elect, Consumer: Consumer})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if got.Namespace != "coffer" || got.Name != "coffer-events" || got.LeaseDuration != 20*time.Second || got.RenewDeadline != 10*time.Second || got.Identity == "" {
		t.Errorf("election %+v", got)
	}
}
