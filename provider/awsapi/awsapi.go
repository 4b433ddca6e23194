// Package awsapi builds the AWS SDK configuration and clients coffer uses:
// the SDK's standard settings (AWS_ENDPOINT_URL and the per-service
// variants, FIPS, dual-stack, shared config), bounded retries, and clients
// per identity and region, created once and reused. It is the layer under
// fetch: it names the AWS operations coffer calls (SecretsManagerAPI,
// ParameterStoreAPI) and knows nothing of workloads or mounts.
package awsapi

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/coffer-csi/coffer/internal/bounded"
	"github.com/coffer-csi/coffer/internal/sdkhttp"
)

// SecretsManagerAPI is the part of the Secrets Manager client coffer uses:
// fetch calls it, tests put fakes behind it.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	BatchGetSecretValue(ctx context.Context, in *secretsmanager.BatchGetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
}

// ParameterStoreAPI is the part of the SSM client coffer uses.
type ParameterStoreAPI interface {
	GetParameters(ctx context.Context, in *ssm.GetParametersInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
	GetParametersByPath(ctx context.Context, in *ssm.GetParametersByPathInput, optFns ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error)
}

// Settings adjust the SDK's defaults.
type Settings struct {
	// Region is the default region (usually empty: each mount says its own).
	Region string
	// FIPS forces FIPS endpoints (same as AWS_USE_FIPS_ENDPOINT=true).
	FIPS bool
	// DualStack forces dual-stack endpoints (AWS_USE_DUALSTACK_ENDPOINT=true).
	DualStack bool
	// MaxAttempts per AWS call, retries included (default 3).
	MaxAttempts int
	// MaxBackoff between retries (default 2s): retries must fit in a mount's
	// deadline, far shorter than the SDK's 20s default.
	MaxBackoff time.Duration
}

// LoadConfig loads the SDK configuration from the environment and shared
// config, as every AWS tool does, with coffer's retry bounds.
func LoadConfig(ctx context.Context, s Settings) (aws.Config, error) {
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 3
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = 2 * time.Second
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = s.MaxAttempts
				o.MaxBackoff = s.MaxBackoff
			})
		}),
	}
	if s.Region != "" {
		opts = append(opts, config.WithRegion(s.Region))
	}
	if s.FIPS {
		opts = append(opts, config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled))
	}
	if s.DualStack {
		opts = append(opts, config.WithUseDualStackEndpoint(aws.DualStackEndpointStateEnabled))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS SDK configuration: %w", err)
	}
	cfg.HTTPClient = sdkhttp.Shared(cfg.HTTPClient)
	return cfg, nil
}

// Clients are the AWS clients of one identity, created per region on first
// use. They are safe for concurrent use.
type Clients struct {
	base  aws.Config
	mu    sync.Mutex
	sm    map[string]*secretsmanager.Client
	param map[string]*ssm.Client
}

// NewClients returns clients that sign with creds and otherwise use base.
func NewClients(base aws.Config, creds aws.CredentialsProvider) *Clients {
	cfg := base.Copy()
	cfg.Credentials = creds
	return &Clients{base: cfg, sm: map[string]*secretsmanager.Client{}, param: map[string]*ssm.Client{}}
}

func (c *Clients) regional(region string) aws.Config {
	cfg := c.base.Copy()
	cfg.Region = region
	return cfg
}

// SecretsManager returns the Secrets Manager client for region.
func (c *Clients) SecretsManager(region string) SecretsManagerAPI {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.sm[region]
	if !ok {
		cl = secretsmanager.NewFromConfig(c.regional(region))
		c.sm[region] = cl
	}
	return cl
}

// ParameterStore returns the SSM client for region.
func (c *Clients) ParameterStore(region string) ParameterStoreAPI {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.param[region]
	if !ok {
		cl = ssm.NewFromConfig(c.regional(region))
		c.param[region] = cl
	}
	return cl
}

// ClientCache reuses the clients of an identity across its mounts until
// its credentials change (refreshed), so steady-state mounts build no SDK
// clients.
type ClientCache struct {
	base aws.Config
	// mu makes a look-up and the store of new clients one step, so
	// concurrent first mounts of an identity build its clients once.
	mu sync.Mutex
	// entries holds the clients of at most max identities; when full, the
	// identity least recently used goes. Clients do not expire: new
	// credentials replace them.
	entries *bounded.LRU[cachedClients]
}

type cachedClients struct {
	clients *Clients
	akid    string
}

// NewClientCache returns a cache of at most max identities' clients
// (default 1000).
func NewClientCache(base aws.Config, max int) *ClientCache {
	if max <= 0 {
		max = 1000
	}
	return &ClientCache{base: base, entries: bounded.NewLRU[cachedClients](max, nil)}
}

// For returns the clients of the identity key signing with creds.
func (c *ClientCache) For(ctx context.Context, key string, creds aws.CredentialsProvider) *Clients {
	v, err := creds.Retrieve(ctx)
	if err != nil || key == "" {
		// Nothing to key on: do not share.
		return NewClients(c.base, creds)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries.Get(key); ok && e.akid == v.AccessKeyID {
		return e.clients
	}
	e := cachedClients{clients: NewClients(c.base, creds), akid: v.AccessKeyID}
	c.entries.Add(key, e)
	return e.clients
}
