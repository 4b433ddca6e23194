package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Audiences of the tokens coffer asks the CSIDriver to mint.
const (
	AudienceSTS         = "sts.amazonaws.com"
	AudiencePodIdentity = "pods.eks.amazonaws.com"
)

// tokenRequestsFix tells a user how to make the driver send tokens.
const tokenRequestsFix = `the CSIDriver "secrets-store.csi.k8s.io" must request ServiceAccount tokens for coffer: ` +
	`with the driver's Helm chart set tokenRequests[0].audience=sts.amazonaws.com and tokenRequests[1].audience=pods.eks.amazonaws.com; ` +
	`or edit the CSIDriver: spec.tokenRequests: [{audience: sts.amazonaws.com}, {audience: pods.eks.amazonaws.com}] and spec.requiresRepublish: true`

// serviceAccountToken is one entry of the driver's tokens attribute.
type serviceAccountToken struct {
	Token               string    `json:"token"`
	ExpirationTimestamp time.Time `json:"expirationTimestamp"`
}

// token picks the token for audience out of the driver's
// csi.storage.k8s.io/serviceAccount.tokens attribute and verifies it (the
// cluster's signature, audience, expiry, and the workload it was issued
// to) before anything else uses it: no cached credential is handed out
// for a token coffer has not verified. Errors never contain the token.
func (v *Verifier) token(ctx context.Context, raw, audience string, req Request) (verified, error) {
	if raw == "" {
		return verified{}, &Error{Reason: ReasonNoToken, Msg: "the driver sent no ServiceAccount token (attribute csi.storage.k8s.io/serviceAccount.tokens is missing); " + tokenRequestsFix}
	}
	var tokens map[string]serviceAccountToken
	if err := json.Unmarshal([]byte(raw), &tokens); err != nil {
		return verified{}, &Error{Reason: ReasonInvalidToken, Msg: "the driver's csi.storage.k8s.io/serviceAccount.tokens attribute is not the JSON the driver sends ({\"<audience>\": {\"token\": ..., \"expirationTimestamp\": ...}})"}
	}
	t, ok := tokens[audience]
	if !ok || t.Token == "" {
		have := make([]string, 0, len(tokens))
		for aud := range tokens {
			have = append(have, aud)
		}
		sort.Strings(have)
		return verified{}, &Error{Reason: ReasonNoToken, Msg: fmt.Sprintf("the driver sent no token for audience %q (it sent: %s); %s", audience, strings.Join(have, ", "), tokenRequestsFix)}
	}
	podBound, err := v.verify(ctx, t.Token, audience, req)
	if err != nil {
		return verified{}, err
	}
	return verified{token: t.Token, podBound: podBound}, nil
}

// verified is a token coffer verified, and what it proves.
type verified struct {
	token string
	// podBound: the token names the pod that mounts (kubelet's always
	// do); otherwise it proves only its ServiceAccount.
	podBound bool
}
