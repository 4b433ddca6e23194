package kube

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// request is what the API server saw.
type request struct{ method, path, query, contentType, body string }

// apiServer answers every request with reply and records it.
func apiServer(t *testing.T, reply func(r request) (int, any)) (*Client, func() []request) {
	t.Helper()
	var mu sync.Mutex
	var seen []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), string(b)}
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		code, body := reply(req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	k, err := New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return k, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), seen...)
	}
}

// TestClientRequests: each typed call is the request client-go's generated
// clients make (paths, verbs, query, patch types), and answers decode into
// the right types, errors into API status errors.
func TestClientRequests(t *testing.T) {
	secret := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "team", ResourceVersion: "7"}}
	k, seen := apiServer(t, func(r request) (int, any) {
		switch {
		case r.path == "/api/v1/namespaces/team/secrets/missing":
			return 404, metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404, Message: `secrets "missing" not found`}
		case strings.HasSuffix(r.path, "/token"):
			return 201, authenticationv1.TokenRequest{TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"}, Status: authenticationv1.TokenRequestStatus{Token: "t0ken"}}
		case strings.Contains(r.path, "/nodes/"):
			return 200, corev1.Node{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}, ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"topology.kubernetes.io/region": "eu-west-1"}}}
		case strings.Contains(r.path, "/deployments/"):
			return 200, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web", "namespace": "team"}}
		}
		return 200, secret
	})
	ctx := context.Background()
	if s, err := k.Secrets("team").Get(ctx, "db", metav1.GetOptions{}); err != nil || s.ResourceVersion != "7" {
		t.Errorf("Get secret: %v, %+v", err, s)
	}
	if _, err := k.Secrets("team").Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Get missing secret: %v, want NotFound", err)
	}
	if _, err := k.Secrets("team").Create(ctx, secret, metav1.CreateOptions{FieldManager: "coffer"}); err != nil {
		t.Error(err)
	}
	if _, err := k.Secrets("team").Patch(ctx, "db", types.ApplyPatchType, []byte(`{"apiVersion":"v1","kind":"Secret"}`), metav1.PatchOptions{FieldManager: "coffer", Force: ptr.To(true)}); err != nil {
		t.Error(err)
	}
	uid := types.UID("u1")
	if err := k.Secrets("team").Delete(ctx, "db", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil {
		t.Error(err)
	}
	tr, err := k.ServiceAccounts("team").CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"sts.amazonaws.com"}}}, metav1.CreateOptions{})
	if err != nil || tr.Status.Token != "t0ken" {
		t.Errorf("CreateToken: %v, %+v", err, tr)
	}
	if n, err := k.Nodes().Get(ctx, "n1", metav1.GetOptions{}); err != nil || n.Labels["topology.kubernetes.io/region"] != "eu-west-1" {
		t.Errorf("Get node: %v, %+v", err, n)
	}
	if _, err := k.Deployments("team").Patch(ctx, "web", types.StrategicMergePatchType, []byte(`{}`), metav1.PatchOptions{}); err != nil {
		t.Error(err)
	}
	want := []request{
		{method: "GET", path: "/api/v1/namespaces/team/secrets/db"},
		{method: "GET", path: "/api/v1/namespaces/team/secrets/missing"},
		{method: "POST", path: "/api/v1/namespaces/team/secrets", query: "fieldManager=coffer", contentType: "application/json"},
		{method: "PATCH", path: "/api/v1/namespaces/team/secrets/db", query: "fieldManager=coffer&force=true", contentType: "application/apply-patch+yaml"},
		{method: "DELETE", path: "/api/v1/namespaces/team/secrets/db", contentType: "application/json"},
		{method: "POST", path: "/api/v1/namespaces/team/serviceaccounts/app/token", contentType: "application/json"},
		{method: "GET", path: "/api/v1/nodes/n1"},
		{method: "PATCH", path: "/apis/apps/v1/namespaces/team/deployments/web", contentType: "application/strategic-merge-patch+json"},
	}
	got := seen()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.method != w.method || g.path != w.path || g.query != w.query || g.contentType != w.contentType {
			t.Errorf("request %d: %s %s?%s (%s), want %s %s?%s (%s)", i, g.method, g.path, g.query, g.contentType, w.method, w.path, w.query, w.contentType)
		}
	}
	if !strings.Contains(got[4].body, `"uid":"u1"`) || !strings.Contains(got[5].body, `"audiences":["sts.amazonaws.com"]`) {
		t.Errorf("request bodies: delete %s, token %s", got[4].body, got[5].body)
	}
}

// TestConfigMapRequests: the change ledger's ConfigMap is read, created and
// replaced (with its resourceVersion, so a concurrent write conflicts) as
// client-go's typed client does.
func TestConfigMapRequests(t *testing.T) {
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{Name: "coffer-changes", Namespace: "coffer", ResourceVersion: "7"}}
	k, seen := apiServer(t, func(request) (int, any) { return 200, cm })
	ctx := context.Background()
	cms := k.ConfigMaps("coffer")
	if got, err := cms.Get(ctx, "coffer-changes", metav1.GetOptions{}); err != nil || got.ResourceVersion != "7" {
		t.Errorf("Get: %v, %+v", err, got)
	}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Error(err)
	}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Error(err)
	}
	if err := cms.Delete(ctx, "coffer-changes", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
	want := []request{
		{method: "GET", path: "/api/v1/namespaces/coffer/configmaps/coffer-changes"},
		{method: "POST", path: "/api/v1/namespaces/coffer/configmaps"},
		{method: "PUT", path: "/api/v1/namespaces/coffer/configmaps/coffer-changes"},
		{method: "DELETE", path: "/api/v1/namespaces/coffer/configmaps/coffer-changes"},
	}
	got := seen()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].method != w.method || got[i].path != w.path {
			t.Errorf("request %d: %s %s, want %s %s", i, got[i].method, got[i].path, w.method, w.path)
		}
	}
	if !strings.Contains(got[2].body, `"resourceVersion":"7"`) {
		t.Errorf("Update's body has no resourceVersion: %s", got[2].body)
	}
}
