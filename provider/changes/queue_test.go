package changes

import (
	"strings"
	"testing"
)

// TestQueueCoverage: the account comes from the queue URL's path, the
// region from SQS's own host, else from the client's configuration (an
// endpoint override such as AWS_ENDPOINT_URL's); anything else is refused
// with the fix.
func TestQueueCoverage(t *testing.T) {
	for _, tc := range []struct {
		url, clientRegion string
		want              Coverage
		err               string
	}{
		{url: "https://sqs.eu-west-1.amazonaws.com/123456789012/coffer-events", want: Coverage{Account: "123456789012", Region: "eu-west-1"}},
		{url: "https://sqs.eu-west-1.amazonaws.com/123456789012/coffer-events", clientRegion: "eu-west-1", want: Coverage{Account: "123456789012", Region: "eu-west-1"}},
		{url: "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q", want: Coverage{Account: "123456789012", Region: "cn-north-1"}},
		{url: "https://us-east-2.queue.amazonaws.com/123456789012/q/", want: Coverage{Account: "123456789012", Region: "us-east-2"}},
		{url: "http://127.0.0.1:4566/123456789012/q", clientRegion: "us-east-1", want: Coverage{Account: "123456789012", Region: "us-east-1"}},
		{url: "http://127.0.0.1:4566/123456789012/q", err: "the queue's region is unknown"},
		{url: "https://sqs.eu-west-1.amazonaws.com/123456789012/q", clientRegion: "us-east-1", err: "the queue is in eu-west-1 but the SQS client is configured for us-east-1"},
		{url: "https://sqs.eu-west-1.amazonaws.com/q", err: "path is not /ACCOUNT/NAME"},
		{url: "https://sqs.eu-west-1.amazonaws.com/12345/q", err: "path is not /ACCOUNT/NAME"},
		{url: "https://sqs.eu-west-1.amazonaws.com/123456789012/a/b", err: "path is not /ACCOUNT/NAME"},
		{url: "sqs.eu-west-1.amazonaws.com/123456789012/q", err: "not an http(s) URL"},
		{url: "http://127.0.0.1/123456789012/q", clientRegion: "moon", err: `"moon" is not an AWS region`},
	} {
		q, err := ParseQueueURL(tc.url)
		var got Coverage
		if err == nil {
			got, err = q.Coverage(tc.clientRegion)
		}
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s (client region %q): %+v, %v; want an error with %q", tc.url, tc.clientRegion, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s (client region %q): %+v, %v; want %+v", tc.url, tc.clientRegion, got, err, tc.want)
		}
	}
}
