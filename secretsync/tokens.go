package secretsync

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/bounded"
	"github.com/coffer-csi/coffer/internal/kube"
)

// TokenSource mints ServiceAccount tokens with the TokenRequest API, as
// kubelet does for a pod, and hands them out in the driver's
// csi.storage.k8s.io/serviceAccount.tokens format, so the auth package
// serves the controller exactly as it serves mounts. Tokens are reused
// until half their life is gone. They are credentials: never logged.
type TokenSource struct {
	ServiceAccounts kube.ServiceAccountsGetter
	// TTL is the lifetime requested (default and minimum: 10 minutes, the
	// shortest the apiserver grants).
	TTL time.Duration
	// Clock is the time source of token reuse (nil: the real clock).
	Clock clock.PassiveClock

	once sync.Once
	// maxTokens bounds cache (0: maxCachedTokens).
	maxTokens int
	// cache holds at most maxTokens tokens, one per ServiceAccount
	// and audience, each until half its life is gone; when full, the token
	// least recently used is dropped.
	cache *bounded.LRU[authenticationv1.TokenRequestStatus]
}

// maxCachedTokens bounds the cache: one entry per ServiceAccount and
// audience.
const maxCachedTokens = 10000

// Tokens returns tokens of namespace/serviceAccount for each audience, as
// the JSON object the driver sends.
func (t *TokenSource) Tokens(ctx context.Context, namespace, serviceAccount string, audiences []string) (string, error) {
	out := make(map[string]authenticationv1.TokenRequestStatus, len(audiences))
	for _, aud := range audiences {
		tok, err := t.token(ctx, namespace, serviceAccount, aud)
		if err != nil {
			return "", err
		}
		out[aud] = tok
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("encoding tokens: %w", err)
	}
	return string(b), nil
}

func (t *TokenSource) token(ctx context.Context, namespace, sa, audience string) (authenticationv1.TokenRequestStatus, error) {
	t.once.Do(func() {
		if t.Clock == nil {
			t.Clock = clock.RealClock{}
		}
		if t.maxTokens <= 0 {
			t.maxTokens = maxCachedTokens
		}
		t.cache = bounded.NewLRU[authenticationv1.TokenRequestStatus](t.maxTokens, t.Clock)
	})
	ttl := max(t.TTL, 10*time.Minute)
	key := namespace + "/" + sa + "/" + audience
	if tok, ok := t.cache.Get(key); ok {
		return tok, nil
	}

	seconds := int64(ttl / time.Second)
	res, err := t.ServiceAccounts.ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return authenticationv1.TokenRequestStatus{}, fmt.Errorf("ServiceAccount %s/%s does not exist; create it, or fix serviceAccountName", namespace, sa)
	case kube.ForbiddenByRBAC(err):
		return authenticationv1.TokenRequestStatus{}, fmt.Errorf("coffer may not request tokens of ServiceAccount %s/%s (RBAC: coffer-controller sync needs create on serviceaccounts/token): %s", namespace, sa, apiError(err))
	case apierrors.IsForbidden(err):
		// The chart's admission policy allows only the audiences of
		// sync.controller.tokenAudiences.
		return authenticationv1.TokenRequestStatus{}, fmt.Errorf("an admission policy or webhook refused a token of ServiceAccount %s/%s for audience %s: %s", namespace, sa, audience, apiError(err))
	case err != nil:
		return authenticationv1.TokenRequestStatus{}, fmt.Errorf("requesting a token of ServiceAccount %s/%s for audience %s: %s", namespace, sa, audience, apiError(err))
	}
	t.cache.AddUntil(key, res.Status, res.Status.ExpirationTimestamp.Add(-ttl/2))
	return res.Status, nil
}
