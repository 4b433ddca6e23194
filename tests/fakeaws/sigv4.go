package fakeaws

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SigV4 verification. The fake recomputes the signature exactly as AWS does
// rather than trusting the Authorization header, so tests exercise the real
// credential plumbing of the code under test (wrong secret keys, stale
// session tokens and expired credentials all fail as they would in AWS).

const (
	sigV4Algorithm = "AWS4-HMAC-SHA256"
	amzDateFormat  = "20060102T150405Z"
	// AWS rejects requests whose X-Amz-Date is more than 15 minutes away
	// from its clock.
	maxClockSkew = 15 * time.Minute
)

// sigV4Auth is the parsed Authorization header.
type sigV4Auth struct {
	AccessKeyID   string
	Date          string // yyyymmdd from the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

func (a *sigV4Auth) scope() string {
	return a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request"
}

// parseAuthorization parses
//
//	AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex
//
// It does not verify anything; the region is needed before verification to
// route the request (e.g. to a region that is down).
func parseAuthorization(h string) (*sigV4Auth, *apiError) {
	if h == "" {
		return nil, newErr(http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	alg, rest, ok := strings.Cut(h, " ")
	if !ok || alg != sigV4Algorithm {
		return nil, clientErr("IncompleteSignatureException", "Unsupported authorization type")
	}
	a := &sigV4Auth{}
	var haveCred, haveSigned, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return nil, clientErr("IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", v)
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
			haveCred = true
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
			haveSigned = true
		case "Signature":
			a.Signature = v
			haveSig = true
		}
	}
	if !haveCred || !haveSigned || !haveSig {
		return nil, clientErr("IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
	}
	return a, nil
}

// verifySignature checks the request signature against the identity's
// secret key. now is the server clock, for the skew check.
func verifySignature(r *http.Request, body []byte, a *sigV4Auth, secretKey string, now time.Time) *apiError {
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return clientErr("IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if !strings.HasPrefix(amzDate, a.Date) {
		return clientErr("InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", a.Date, amzDate[:8], amzDate)
	}
	if skew := now.Sub(t); skew > maxClockSkew || skew < -maxClockSkew {
		return clientErr("InvalidSignatureException", "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			amzDate, now.Add(-maxClockSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat))
	}

	bodyHash := sha256Hex(body)
	payloadHash := bodyHash
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		if h != "UNSIGNED-PAYLOAD" && h != bodyHash {
			return clientErr("InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		payloadHash = h
	}

	canonical := strings.Join([]string{
		r.Method,
		canonicalURI(r.URL),
		canonicalQuery(r.URL.Query()),
		canonicalHeaders(r, a.SignedHeaders),
		strings.Join(a.SignedHeaders, ";"),
		payloadHash,
	}, "\n")
	stringToSign := strings.Join([]string{sigV4Algorithm, amzDate, a.scope(), sha256Hex([]byte(canonical))}, "\n")

	key := hmacSHA256([]byte("AWS4"+secretKey), a.Date)
	key = hmacSHA256(key, a.Region)
	key = hmacSHA256(key, a.Service)
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, stringToSign))

	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return clientErr("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

// canonicalURI URI-encodes the already-escaped path once more: every
// service except S3 double-encodes the path when signing.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return uriEncode(p, false)
}

// canonicalQuery sorts parameters by encoded key, then encoded value.
func canonicalQuery(q url.Values) string {
	type pair struct{ k, v string }
	var pairs []pair
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, pair{uriEncode(k, true), uriEncode(v, true)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// canonicalHeaders renders "name:value\n" for each signed header. Go's
// server lifts Host (and, when absent from the map, Content-Length) out of
// the header map, so those are taken from the request itself.
func canonicalHeaders(r *http.Request, signed []string) string {
	var b strings.Builder
	for _, name := range signed {
		var values []string
		switch name {
		case "host":
			values = []string{r.Host}
		case "content-length":
			values = r.Header.Values("Content-Length")
			if len(values) == 0 {
				values = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		default:
			values = r.Header.Values(name)
		}
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimAll(v))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// trimAll trims a header value and collapses runs of spaces, the SigV4
// "Trimall" function.
func trimAll(v string) string {
	v = strings.Trim(v, " ")
	for strings.Contains(v, "  ") {
		v = strings.ReplaceAll(v, "  ", " ")
	}
	return v
}

// uriEncode percent-encodes everything except RFC 3986 unreserved
// characters (and '/', unless encodeSlash).
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
