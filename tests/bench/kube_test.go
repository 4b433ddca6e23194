package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// kubeAPI is the sliver of the Kubernetes API coffer reads: ServiceAccounts
// (role annotations), its Node (region label) and the token issuer
// (/.well-known/openid-configuration) and its keys (/openid/v1/jwks). Every ServiceAccount
// "ns/sa" exists and is annotated with the role roleFor(ns, sa).
type kubeAPI struct {
	server *httptest.Server
	reads  atomic.Int64
}

func newKubeAPI(t testing.TB, roleFor func(ns, sa string) string, issuer string, jwks []byte) *kubeAPI {
	k := &kubeAPI{}
	k.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.reads.Add(1)
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/openid/v1/jwks":
			w.Write(jwks)
		case r.URL.Path == "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "jwks_uri": "https://" + r.Host + "/openid/v1/jwks"})
		case len(parts) == 6 && parts[2] == "namespaces" && parts[4] == "serviceaccounts":
			json.NewEncoder(w).Encode(map[string]any{
				"apiVersion": "v1", "kind": "ServiceAccount",
				"metadata": map[string]any{"namespace": parts[3], "name": parts[5], "annotations": map[string]string{"eks.amazonaws.com/role-arn": roleFor(parts[3], parts[5])}},
			})
		case len(parts) == 4 && parts[2] == "nodes":
			json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": parts[3], "labels": map[string]string{"topology.kubernetes.io/region": region}}})
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
		}
	}))
	t.Cleanup(k.server.Close)
	return k
}

// kubeconfig writes a kubeconfig for the fake API and returns its path.
func (k *kubeAPI) kubeconfig(t testing.TB) string {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: bench, cluster: {server: %q}}]
users: [{name: bench, user: {}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
current-context: bench
`, k.server.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
