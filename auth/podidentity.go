package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"k8s.io/utils/clock"
)

// The EKS Pod Identity agent's node-local addresses.
const (
	DefaultPodIdentityIPv4URL = "http://169.254.170.23/v1/credentials"
	DefaultPodIdentityIPv6URL = "http://[fd00:ec2::23]/v1/credentials"
)

// PodIdentityAgent fetches credentials from the EKS Pod Identity agent on
// the node, presenting the pod's ServiceAccount token.
type PodIdentityAgent struct {
	IPv4URL, IPv6URL string
	// Timeout bounds each attempt (default 2s); Attempts is how many rounds
	// over the addresses are made (default 3).
	Timeout  time.Duration
	Attempts int
	Client   *http.Client
	// Clock is the time source of the waits between rounds (nil: the real
	// clock).
	Clock clock.Clock
}

// agentCredentials is the agent's answer, the container credentials format.
type agentCredentials struct {
	AccessKeyID     string    `json:"AccessKeyId"`
	SecretAccessKey string    `json:"SecretAccessKey"`
	Token           string    `json:"Token"`
	Expiration      time.Time `json:"Expiration"`
}

// addresses orders the agent's addresses by preference: ipv4 or ipv6 alone,
// or auto: IPv4 first, then IPv6 when IPv4 fails.
func (a *PodIdentityAgent) addresses(preferred string) []string {
	v4, v6 := a.IPv4URL, a.IPv6URL
	if v4 == "" {
		v4 = DefaultPodIdentityIPv4URL
	}
	if v6 == "" {
		v6 = DefaultPodIdentityIPv6URL
	}
	switch preferred {
	case "ipv4":
		return []string{v4}
	case "ipv6":
		return []string{v6}
	}
	return []string{v4, v6}
}

// credentials asks the agent for the pod's credentials. Unreachable
// addresses and server errors move on to the next address and are retried;
// a refusal (4xx) is final.
func (a *PodIdentityAgent) credentials(ctx context.Context, token, preferred, subject string) (aws.Credentials, error) {
	timeout, attempts := a.Timeout, a.Attempts
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if attempts <= 0 {
		attempts = 3
	}
	client := a.Client
	if client == nil {
		client = http.DefaultClient
	}
	clk := a.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	var failures []string
	backoff := 100 * time.Millisecond
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-clk.After(backoff):
				backoff *= 2
			case <-ctx.Done():
				return aws.Credentials{}, a.unreachable(subject, failures, ctx.Err())
			}
		}
		for _, url := range a.addresses(preferred) {
			creds, err := a.fetch(ctx, client, url, token, timeout)
			if err == nil {
				return creds, nil
			}
			var final *Error
			if errors.As(err, &final) {
				final.Msg = fmt.Sprintf("the EKS Pod Identity agent refused %s: %s", subject, final.Msg)
				return aws.Credentials{}, final
			}
			failures = append(failures, fmt.Sprintf("%s: %v", url, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return aws.Credentials{}, a.unreachable(subject, failures, nil)
}

func (a *PodIdentityAgent) unreachable(subject string, failures []string, cause error) error {
	const keep = 4 // the last few failures say enough
	if len(failures) > keep {
		failures = failures[len(failures)-keep:]
	}
	return &Error{Reason: ReasonUnreachable, Err: cause, Msg: fmt.Sprintf(
		"the EKS Pod Identity agent did not answer for %s (%s); is the eks-pod-identity-agent add-on running on this node? "+
			"For IPv6-only nodes set preferredAddressType: ipv6", subject, strings.Join(failures, "; "))}
}

// fetch makes one request. It returns *Error for a final refusal and a
// plain error for failures worth retrying elsewhere.
func (a *PodIdentityAgent) fetch(ctx context.Context, client *http.Client, url, token string, timeout time.Duration) (aws.Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return aws.Credentials{}, &Error{Reason: ReasonConfig, Msg: fmt.Sprintf("agent URL %q is not valid", url)}
	}
	req.Header.Set("Authorization", token)
	resp, err := client.Do(req)
	if err != nil {
		return aws.Credentials{}, errors.New(scrub(err.Error(), token))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("reading the answer: %w", err)
	}
	switch {
	case resp.StatusCode >= 500:
		return aws.Credentials{}, fmt.Errorf("HTTP %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		reason := ReasonDenied
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
			reason = ReasonInvalidToken
		}
		return aws.Credentials{}, &Error{Reason: reason, Msg: fmt.Sprintf("HTTP %d: %s; check the pod identity association of this ServiceAccount (aws eks list-pod-identity-associations)",
			resp.StatusCode, agentMessage(body, token))}
	}
	var c agentCredentials
	if err := json.Unmarshal(body, &c); err != nil || c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return aws.Credentials{}, &Error{Reason: ReasonOther, Msg: "the agent answered without usable credentials"}
	}
	return aws.Credentials{
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.Token,
		Source: "coffer-pod-identity", CanExpire: !c.Expiration.IsZero(), Expires: c.Expiration,
	}, nil
}

// maxAgentMessage bounds the agent's message quoted in an error.
const maxAgentMessage = 300

// agentMessage extracts the agent's error message, bounded, without the
// token should the agent ever echo it.
func agentMessage(body []byte, token string) string {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && (e.Code != "" || e.Message != "") {
		msg = strings.TrimSpace(e.Code + " " + e.Message)
	}
	if msg == "" {
		return "no details"
	}
	return redact(msg, token, maxAgentMessage)
}

// minTokenFragment is the shortest piece of a token redact removes. A
// shorter one is no use to anyone: the signature alone is 43 characters
// or more, and a JWT's first 16 characters are the same for every token.
const minTokenFragment = 16

// redact removes token from s, then cuts s to max bytes, then removes
// every remaining run of at least minTokenFragment bytes that also occurs
// in token: a prefix the agent echoed, or any part of it. The order is
// what makes it hold: cut first, and a token straddling the cut survives
// as a prefix that no longer equals the token.
//
// What remains holds no substring of token of minTokenFragment bytes or
// more: every such window of s is masked, and the marker's brackets never
// occur in a JWT. The work is bounded by max times len(token).
func redact(s, token string, max int) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, "[token]")
	}
	cut := len(s) > max
	if cut {
		s = strings.ToValidUTF8(s[:max], "")
	}
	if len(token) >= minTokenFragment && len(s) >= minTokenFragment {
		masked := make([]bool, len(s))
		found := false
		for i := 0; i+minTokenFragment <= len(s); i++ {
			if strings.Contains(token, s[i:i+minTokenFragment]) {
				for j := i; j < i+minTokenFragment; j++ {
					masked[j] = true
				}
				found = true
			}
		}
		if found {
			var b strings.Builder
			for i := 0; i < len(s); i++ {
				if !masked[i] {
					b.WriteByte(s[i])
					continue
				}
				if i == 0 || !masked[i-1] {
					b.WriteString("[token]")
				}
			}
			s = b.String()
		}
	}
	if cut {
		s += "..."
	}
	return s
}

func scrub(s, token string) string {
	return redact(s, token, maxTransportError)
}

// maxTransportError bounds a transport error quoted in a message.
const maxTransportError = 1024
