package auth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
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
// csi.storage.k8s.io/serviceAccount.tokens attribute and checks that it is
// current and belongs to the ServiceAccount the driver named. Signature and
// audience are AWS's to verify; the local checks catch misrouted tokens
// early with a clear message. Errors never contain the token.
func token(raw, audience string, req Request, now time.Time) (string, error) {
	if raw == "" {
		return "", &Error{Reason: ReasonNoToken, Msg: "the driver sent no ServiceAccount token (attribute csi.storage.k8s.io/serviceAccount.tokens is missing); " + tokenRequestsFix}
	}
	var tokens map[string]serviceAccountToken
	if err := json.Unmarshal([]byte(raw), &tokens); err != nil {
		return "", &Error{Reason: ReasonInvalidToken, Msg: "the driver's csi.storage.k8s.io/serviceAccount.tokens attribute is not the JSON the driver sends ({\"<audience>\": {\"token\": ..., \"expirationTimestamp\": ...}})"}
	}
	t, ok := tokens[audience]
	if !ok || t.Token == "" {
		have := make([]string, 0, len(tokens))
		for aud := range tokens {
			have = append(have, aud)
		}
		return "", &Error{Reason: ReasonNoToken, Msg: fmt.Sprintf("the driver sent no token for audience %q (it sent: %s); %s", audience, strings.Join(have, ", "), tokenRequestsFix)}
	}
	if !t.ExpirationTimestamp.IsZero() && !now.Before(t.ExpirationTimestamp) {
		return "", &Error{Reason: ReasonInvalidToken, Msg: fmt.Sprintf("the ServiceAccount token for audience %q expired at %s; kubelet should have refreshed it (is the node's clock right?)", audience, t.ExpirationTimestamp.Format(time.RFC3339))}
	}
	claims, err := unverifiedClaims(t.Token)
	if err != nil {
		return "", &Error{Reason: ReasonInvalidToken, Msg: fmt.Sprintf("the ServiceAccount token for audience %q is not a JWT: %v", audience, err)}
	}
	if want := "system:serviceaccount:" + req.Namespace + ":" + req.ServiceAccount; req.ServiceAccount != "" && claims.Subject != want {
		return "", &Error{Reason: ReasonInvalidToken, Msg: fmt.Sprintf("the ServiceAccount token is for %q but the driver says the pod runs as %q", claims.Subject, want)}
	}
	if claims.Expiry != 0 && !now.Before(time.Unix(claims.Expiry, 0)) {
		return "", &Error{Reason: ReasonInvalidToken, Msg: fmt.Sprintf("the ServiceAccount token for audience %q has expired", audience)}
	}
	return t.Token, nil
}

// jwtClaims are the claims coffer reads from a token it does not verify.
type jwtClaims struct {
	Subject string `json:"sub"`
	Expiry  int64  `json:"exp"`
}

// unverifiedClaims decodes a JWT's payload without checking its signature.
// Only AWS verifies the token; coffer reads the subject to name the
// identity in messages and to catch a token that belongs to someone else.
func unverifiedClaims(jwt string) (jwtClaims, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return jwtClaims{}, fmt.Errorf("want three dot-separated parts, got %d", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return jwtClaims{}, fmt.Errorf("payload is not base64url")
	}
	var c jwtClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return jwtClaims{}, fmt.Errorf("payload is not a JSON object of claims")
	}
	return c, nil
}
