package auth

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/internal/bounded"
	"github.com/coffer-csi/coffer/internal/flight"
)

// credentialCache reuses temporary credentials per identity key until
// shortly before they expire, and makes concurrent requests for one key
// share one fetch (a burst of pods of one ServiceAccount: one STS call).
type credentialCache struct {
	// margin is how long before expiry credentials stop being handed out,
	// so a mount never starts with credentials about to lapse.
	margin time.Duration
	// fetchTimeout bounds a shared fetch, which outlives any one caller.
	fetchTimeout time.Duration
	clock        clock.PassiveClock

	// entries holds at most maxEntries identities' credentials, each until
	// margin before it expires; when full, the identity least recently
	// used is dropped (its next mount asks STS again).
	entries *bounded.LRU[aws.Credentials]
	flights flight.Group
}

func newCredentialCache(margin time.Duration, maxEntries int, clk clock.PassiveClock) *credentialCache {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &credentialCache{margin: margin, fetchTimeout: 30 * time.Second, clock: clk, entries: bounded.NewLRU[aws.Credentials](maxEntries, clk)}
}

// get returns the cached credentials of key, or fetches them once for all
// concurrent callers. Each caller waits no longer than its own context.
func (c *credentialCache) get(ctx context.Context, key string, fetch func(context.Context) (aws.Credentials, error)) (aws.Credentials, error) {
	if creds, ok := c.lookup(key); ok {
		return creds, nil
	}
	return flight.Do(ctx, &c.flights, key, "waiting for AWS credentials", c.fetchTimeout, func(ctx context.Context) (aws.Credentials, error) {
		if creds, ok := c.lookup(key); ok {
			return creds, nil
		}
		creds, err := fetch(ctx)
		if err != nil {
			return aws.Credentials{}, err
		}
		c.store(key, creds)
		return creds, nil
	})
}

// usableUntil is when creds stop being handed out: margin before they
// expire (zero: never, for credentials that do not expire).
func (c *credentialCache) usableUntil(creds aws.Credentials) time.Time {
	if !creds.CanExpire {
		return time.Time{}
	}
	return creds.Expires.Add(-c.margin)
}

func (c *credentialCache) lookup(key string) (aws.Credentials, bool) {
	return c.entries.Get(key)
}

func (c *credentialCache) store(key string, creds aws.Credentials) {
	until := c.usableUntil(creds)
	if !until.IsZero() && !c.clock.Now().Before(until) {
		return // already too close to expiry to be worth keeping
	}
	c.entries.AddUntil(key, creds, until)
}

// len reports the number of cached credentials (for tests and metrics).
func (c *credentialCache) len() int { return c.entries.Len() }

// remove drops key's credentials.
func (c *credentialCache) remove(key string) { c.entries.Remove(key) }
