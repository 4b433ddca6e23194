package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// testToken is shaped like a ServiceAccount token (base64url parts joined
// by dots), deterministic, and about as long as kubelet's.
func testToken() string {
	var parts []string
	seed := []byte("coffer")
	for _, n := range []int{40, 600, 256} {
		var b []byte
		for len(b) < n {
			sum := sha256.Sum256(seed)
			seed = sum[:]
			b = append(b, sum[:]...)
		}
		parts = append(parts, base64.RawURLEncoding.EncodeToString(b[:n]))
	}
	return strings.Join(parts, ".")
}

// tokenFragment returns the first substring of s of at least
// minTokenFragment bytes that also occurs in token, or "".
func tokenFragment(s, token string) string {
	for i := 0; i+minTokenFragment <= len(s); i++ {
		if strings.Contains(token, s[i:i+minTokenFragment]) {
			return s[i : i+minTokenFragment]
		}
	}
	return ""
}

// TestAgentEchoesNoTokenFragment is the hostile agent of issue 26: it
// echoes the token (whole, a prefix, a suffix, a piece) at every offset
// around the 300 bytes its message is cut to, raw or in its JSON error.
// No piece of the token of 16 bytes or more reaches the error. Cutting
// before removing the token left up to 300 bytes of it.
func TestAgentEchoesNoTokenFragment(t *testing.T) {
	tok := testToken()
	echoes := map[string]string{
		"whole":         tok,
		"prefix":        tok[:120],
		"suffix":        tok[len(tok)-120:],
		"middle":        tok[300:420],
		"twice":         tok + " " + tok,
		"split by text": tok[:200] + " and " + tok[200:],
	}
	for name, echo := range echoes {
		for offset := maxAgentMessage - 140; offset <= maxAgentMessage+20; offset++ {
			filler := strings.Repeat("x", offset)
			for _, body := range []string{
				filler + echo + " is not valid",
				fmt.Sprintf(`{"code":"AccessDeniedException","message":%q}`, filler[min(len(filler), 29):]+echo),
			} {
				msg := agentMessage([]byte(body), tok)
				if frag := tokenFragment(msg, tok); frag != "" {
					t.Fatalf("%s at offset %d: the message holds token fragment %q: %q", name, offset, frag, msg)
				}
				if len(msg) > maxAgentMessage+len("...")+len("[token]") {
					t.Fatalf("%s at offset %d: the message is %d bytes", name, offset, len(msg))
				}
			}
		}
	}

	// Over HTTP, as a refusal and as a failure worth retrying.
	for _, code := range []int{http.StatusForbidden, http.StatusBadRequest} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			fmt.Fprintf(w, "%s%s", strings.Repeat("y", 290), r.Header.Get("Authorization"))
		}))
		a := &PodIdentityAgent{IPv4URL: srv.URL, Attempts: 1}
		_, err := a.credentials(context.Background(), tok, "ipv4", "system:serviceaccount:team:app")
		srv.Close()
		if err == nil {
			t.Fatalf("HTTP %d: no error", code)
		}
		if frag := tokenFragment(err.Error(), tok); frag != "" {
			t.Errorf("HTTP %d: the error holds token fragment %q: %v", code, frag, err)
		}
	}
}

func TestRedact(t *testing.T) {
	tok := testToken()
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"no token", "access denied", 300, "access denied"},
		{"whole token", "bad " + tok + " here", 300, "bad [token] here"},
		{"cut", strings.Repeat("a", 20), 10, strings.Repeat("a", 10) + "..."},
		{"whole token across the cut", strings.Repeat("a", 5) + tok, 30, "aaaaa[token]"},
		{"token prefix across the cut", strings.Repeat("a", 5) + tok[:100], 30, "aaaaa[token]..."},
		{"short piece kept", "ab " + tok[:15] + " cd", 300, "ab " + tok[:15] + " cd"},
		{"16 bytes removed", "ab " + tok[:16] + " cd", 300, "ab [token] cd"},
		{"cut inside a rune", "aé", 2, "a..."},
	} {
		if got := redact(tc.in, tok, tc.max); got != tc.want {
			t.Errorf("%s: redact = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestSTSErrorsHoldNoToken: an STS failure whose text echoes the web
// identity token (whole or a piece) loses it; one that does not is kept
// as it is, with its cause.
func TestSTSErrorsHoldNoToken(t *testing.T) {
	tok := testToken()
	cause := context.DeadlineExceeded
	for name, in := range map[string]*Error{
		"message":   {Reason: ReasonInvalidToken, Msg: "STS would not let x assume role y (InvalidIdentityToken: bad token " + tok + ")"},
		"cause":     {Reason: ReasonOther, Msg: "STS would not let x assume role y", Err: fmt.Errorf("decoding %s: %w", tok[:200], cause)},
		"long echo": {Reason: ReasonOther, Msg: strings.Repeat("z", maxSTSMessage-10) + tok},
	} {
		out := withoutToken(in, tok)
		var e *Error
		if !errors.As(out, &e) || e.Reason != in.Reason {
			t.Errorf("%s: %v, want an *Error with reason %s", name, out, in.Reason)
		}
		if frag := tokenFragment(out.Error(), tok); frag != "" {
			t.Errorf("%s: the error holds token fragment %q", name, frag)
		}
	}
	clean := &Error{Reason: ReasonUnreachable, Msg: "STS did not answer", Err: cause}
	if out := withoutToken(clean, tok); out != error(clean) || !errors.Is(out, cause) {
		t.Errorf("an error without the token changed: %v", out)
	}
}
