package changes

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

var (
	// sqsHost is SQS's endpoint host: sqs.REGION.amazonaws.com (and the
	// China partition's .com.cn), or the legacy REGION.queue.amazonaws.com.
	sqsHost       = regexp.MustCompile(`^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)
	legacySQSHost = regexp.MustCompile(`^([a-z0-9-]+)\.queue\.amazonaws\.com(\.cn)?$`)
	accountID     = regexp.MustCompile(`^[0-9]{12}$`)
	queueName     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}(\.fifo)?$`)
)

// QueueURL is what a queue URL says: the account from its path, and the
// region from its host when the host is SQS's own ("" for another
// endpoint, such as AWS_ENDPOINT_URL's: then the client's region is the
// queue's).
type QueueURL struct {
	Account, Region, Name string
}

// ParseQueueURL reads https://sqs.REGION.amazonaws.com/ACCOUNT/NAME, and
// the same path on another endpoint.
func ParseQueueURL(s string) (QueueURL, error) {
	const want = "use the queue's URL as SQS gives it, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME"
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return QueueURL{}, fmt.Errorf("the queue URL is not an http(s) URL: %s", want)
	}
	account, name, ok := strings.Cut(strings.Trim(u.Path, "/"), "/")
	if !ok || !accountID.MatchString(account) || !queueName.MatchString(name) {
		return QueueURL{}, fmt.Errorf("the queue URL's path is not /ACCOUNT/NAME (a 12-digit account id and a queue name): %s", want)
	}
	q := QueueURL{Account: account, Name: name}
	host := u.Hostname()
	if m := sqsHost.FindStringSubmatch(host); m != nil {
		q.Region = m[1]
	} else if m := legacySQSHost.FindStringSubmatch(host); m != nil {
		q.Region = m[1]
	}
	return q, nil
}

// Coverage is the account and region whose announcements the queue
// receives, the client's region standing in when the URL names none.
func (q QueueURL) Coverage(clientRegion string) (Coverage, error) {
	region := q.Region
	if region == "" {
		region = clientRegion
	}
	if region == "" {
		return Coverage{}, errors.New("the queue's region is unknown: its URL is not SQS's own endpoint, so set AWS_REGION to the queue's region")
	}
	if q.Region != "" && clientRegion != "" && clientRegion != q.Region {
		return Coverage{}, fmt.Errorf("the queue is in %s but the SQS client is configured for %s: leave AWS_REGION unset or set it to the queue's region", q.Region, clientRegion)
	}
	if len(Parameter(q.Account, region, "probe")) == 0 {
		return Coverage{}, fmt.Errorf("the queue's region %q is not an AWS region", region)
	}
	return Coverage{Account: q.Account, Region: region}, nil
}
