package auth

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

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
	maxEntries   int
	now          func() time.Time

	mu      sync.Mutex
	entries map[string]aws.Credentials
	flights flight.Group
}

func newCredentialCache(margin time.Duration, maxEntries int) *credentialCache {
	return &credentialCache{margin: margin, fetchTimeout: 30 * time.Second, maxEntries: maxEntries, now: time.Now, entries: map[string]aws.Credentials{}}
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

func (c *credentialCache) usable(creds aws.Credentials) bool {
	return !creds.CanExpire || c.now().Add(c.margin).Before(creds.Expires)
}

func (c *credentialCache) lookup(key string) (aws.Credentials, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	creds, ok := c.entries[key]
	if ok && !c.usable(creds) {
		delete(c.entries, key)
		return aws.Credentials{}, false
	}
	return creds, ok
}

func (c *credentialCache) store(key string, creds aws.Credentials) {
	if !c.usable(creds) {
		return // already too close to expiry to be worth keeping
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.maxEntries {
		c.evictLocked()
	}
	c.entries[key] = creds
}

// evictLocked drops unusable entries and, if the cache is still full, the
// one expiring soonest.
func (c *credentialCache) evictLocked() {
	var soonestKey string
	var soonest time.Time
	for k, creds := range c.entries {
		if !c.usable(creds) {
			delete(c.entries, k)
			continue
		}
		if soonestKey == "" || creds.Expires.Before(soonest) {
			soonestKey, soonest = k, creds.Expires
		}
	}
	if len(c.entries) >= c.maxEntries && soonestKey != "" {
		delete(c.entries, soonestKey)
	}
}

// len reports the number of cached credentials (for tests and metrics).
func (c *credentialCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// remove drops key's credentials.
func (c *credentialCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}
