// Package sdkhttp is the HTTP client coffer's AWS SDK clients share: one
// connection pool for every identity and region, bounded dial and TLS
// times, and request bodies that net/http cannot mistake for failed
// writes.
package sdkhttp

import (
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// New returns a client built from the SDK's defaults; see Shared.
func New() aws.HTTPClient { return Shared(nil) }

// Shared freezes c, the SDK's buildable HTTP client after the shared config
// applied its settings (such as AWS_CA_BUNDLE), so that every service client
// shares one transport and one connection pool. Left buildable, each new
// client (one per identity and region, STS per credential fetch) derives a
// transport of its own, whose idle connections and their goroutines linger
// until the idle timeout. A nil c is the SDK's default; a client that is
// not buildable is kept as it is. Either way its request bodies are read
// through PlainBodies.
func Shared(c aws.HTTPClient) aws.HTTPClient {
	if c == nil {
		// The shared config leaves it unset unless it had something to
		// configure: each client would then build its own.
		c = awshttp.NewBuildableClient()
	}
	if b, ok := c.(*awshttp.BuildableClient); ok {
		c = b.WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = 5 * time.Second
		}).WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 100
			t.MaxIdleConnsPerHost = 16
			t.IdleConnTimeout = 60 * time.Second
			t.TLSHandshakeTimeout = 5 * time.Second
		}).Freeze()
	}
	return PlainBodies(c)
}

// PlainBodies returns a client that sends each request's body to next as
// a plain reader, without the WriteTo method of the SDK's body.
//
// Why: smithy-go closes a request's body as soon as the response headers
// arrive, and its body's WriteTo returns io.EOF once closed. net/http's
// transport reads the body once more after sending Content-Length bytes,
// to check that nothing is left over; when that check runs after the close
// (the writing goroutine was descheduled while the server answered), the
// io.EOF from WriteTo counts as a failed write, and the transport closes the
// connection while the response body is still being read. The call then
// fails with "use of closed network connection" (and is retried, at the
// cost of another AWS call). Read returns a plain io.EOF, which the
// transport takes as the end of the body.
func PlainBodies(next aws.HTTPClient) aws.HTTPClient {
	if p, ok := next.(*plainBodies); ok {
		return p
	}
	return &plainBodies{next: next}
}

type plainBodies struct{ next aws.HTTPClient }

func (c *plainBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return c.next.Do(r)
	}
	// A shallow copy: the caller's request stays as it was.
	r = r.WithContext(r.Context())
	r.Body = readCloser{r.Body}
	if get := r.GetBody; get != nil {
		r.GetBody = func() (io.ReadCloser, error) {
			b, err := get()
			if err != nil || b == nil || b == http.NoBody {
				return b, err
			}
			return readCloser{b}, nil
		}
	}
	return c.next.Do(r)
}

// readCloser has only Read and Close, whatever the body it wraps has.
type readCloser struct{ io.ReadCloser }
