package wiring

import (
	"log/slog"
	"time"

	"k8s.io/utils/clock"

	"github.com/coffer-csi/coffer/auth"
	"github.com/coffer-csi/coffer/provider/quota"
	"github.com/coffer-csi/coffer/provider/render"
	"github.com/coffer-csi/coffer/provider/render/isolate"
	"github.com/coffer-csi/coffer/secretsync"
)

// Config is everything coffer is built from: the settings the commands'
// flags feed (their defaults are Defaults'), and, at the end, what a
// caller or a test supplies instead of what New would build or find
// (Kubernetes clients, the controller's event recorder, logger, clock,
// the evaluator's worker command).
type Config struct {
	// Region is the default region of classes that name none (--region);
	// empty: the node's topology.kubernetes.io/region label.
	Region string
	// NodeName is this node (--node-name): its region label, and the host
	// of the events coffer serve records.
	NodeName string
	AWS      AWS
	// NodeCredentials reads AWS with coffer's own credentials for every
	// mount instead of each pod's identity (--insecure-node-credentials;
	// development only, and coffer mount's way).
	NodeCredentials bool
	Identity        Identity
	Server          Server
	Limits          Limits
	Cache           Cache
	// Quota is the node's budget per AWS API (nil: no budgets, always
	// batch; coffer-controller sync, not a node's DaemonSet, has none).
	Quota     *Quota
	Evaluator Evaluator
	// MetricsNamespaceLabel adds the pod's namespace to mount metrics
	// (--metrics-namespace-label).
	MetricsNamespaceLabel bool
	// SyncAtMount syncs the Secrets a class declares after each of its
	// mounts (coffer serve --sync-secrets).
	SyncAtMount bool
	// RotationEvents records SecretsRotated on pods whose remount changed
	// a version (coffer serve --rotation-events; never with
	// NodeCredentials: the pods' identities are not verified).
	RotationEvents bool
	// ChangeEvents, when set, lets mounts be answered from the cache by
	// the change ledger's rule (coffer serve --events-ledger).
	ChangeEvents *ChangeEvents
	// Controller, when set, builds coffer-controller sync's controllers.
	Controller *Controller

	// Kubeconfig is the Kubernetes API's configuration file (empty:
	// in-cluster), used when Kubernetes is nil.
	Kubeconfig string
	// Kubernetes is the API coffer talks to (nil: connect through
	// Kubeconfig, and only if something needs it).
	Kubernetes *Kubernetes
	// Events records the controller's events (coffer-controller sync's recorder,
	// which its caller owns and stops); required with Controller.
	Events secretsync.EventRecorder
	// Logger receives every component's logs (nil: none).
	Logger *slog.Logger
	// Clock is the time of every piece that keeps time (the value cache
	// and marks, fetch, quota, identity, rotation events, the evaluator
	// pool, the server's drain, the controllers and their tokens); nil: the
	// real clock. One clock, because marks are compared with read times.
	Clock clock.WithTickerAndDelayedExecution
}

// AWS adjusts the AWS SDK's configuration, which otherwise comes from the
// environment and shared config, as for every AWS tool (AWS_ENDPOINT_URL,
// credentials, ...).
type AWS struct {
	// FIPS and DualStack force those endpoints (--fips, --dual-stack).
	FIPS, DualStack bool
	// MaxAttempts per AWS call, retries included, and MaxBackoff between
	// them: retries must fit in a mount's deadline (0: awsapi's defaults,
	// 3 and 2s).
	MaxAttempts int
	MaxBackoff  time.Duration
}

// Identity configures workload identity, the same for coffer serve and
// coffer-controller sync.
type Identity struct {
	// STSAudience is the audience of the token exchanged with STS
	// (--sts-audience).
	STSAudience string
	// The EKS Pod Identity agent's addresses, the timeout of each request
	// and the rounds over them (--pod-identity-*).
	PodIdentityIPv4URL, PodIdentityIPv6URL string
	PodIdentityTimeout                     time.Duration
	PodIdentityAttempts                    int
	// ServiceAccountTTL is how long a ServiceAccount's role annotation is
	// reused (--serviceaccount-cache-ttl).
	ServiceAccountTTL time.Duration
	// RefreshMargin: credentials are reused until this long before they
	// expire (--credential-refresh-margin).
	RefreshMargin time.Duration
	// JWKSURL is where tokens' signing keys are read (empty: the
	// Kubernetes API's /openid/v1/jwks; --service-account-jwks-url).
	JWKSURL string
	// Issuers accepted (empty: the one the Kubernetes API names;
	// --service-account-issuer).
	Issuers []string
	// SessionScope says what coffer's STS sessions name
	// (--sts-session-scope).
	SessionScope auth.SessionScope
}

// Server configures the driver's gRPC API.
type Server struct {
	// MountTimeout bounds every Mount (--mount-timeout).
	MountTimeout time.Duration
	// ShutdownTimeout is how long Mounts in flight may finish when the
	// server stops (--shutdown-timeout).
	ShutdownTimeout time.Duration
	// MaxConcurrentMounts are served at once (--max-concurrent-mounts).
	MaxConcurrentMounts int
}

// Limits bound what one mount or sync may ask of coffer.
type Limits struct {
	// MaxObjects one class may list (--max-objects).
	MaxObjects int
	// MaxResponseBytes of files one Mount returns (--max-response-bytes);
	// FetchAllowance times it bounds what one fetch reads.
	MaxResponseBytes int
	// MaxAttributesBytes of one Mount's attributes JSON
	// (--max-attributes-bytes).
	MaxAttributesBytes int
	// MaxValueBytes of one fetched value (--max-value-bytes).
	MaxValueBytes int
	// FetchConcurrency is the AWS calls one mount or sync has in flight
	// (--fetch-concurrency).
	FetchConcurrency int
	// MaxCallsPerIdentity is the AWS calls one identity has in flight
	// across its mounts (0: no bound; --max-aws-calls-per-identity).
	MaxCallsPerIdentity int
}

// Cache configures the value cache and the freshness rules.
type Cache struct {
	// MaxStaleness is the freshness bound (--max-staleness); TTL the
	// opt-in longer reuse (--cache-ttl). Values are reused for the longer.
	MaxStaleness, TTL time.Duration
	// MaxBytes bounds the cache's memory (--cache-max-bytes).
	MaxBytes int64
	// ServeStale answers mounts with the last good value during an AWS
	// outage, read at most this long ago (0: off; --serve-stale-on-outage).
	ServeStale time.Duration
}

// reuse is how long a value may serve other mounts of its identity.
func (c Cache) reuse() time.Duration { return max(c.MaxStaleness, c.TTL) }

// keep is how long values (and pods' mount marks) must be kept: for reuse
// and for outages. Zero: no cache.
func (c Cache) keep() time.Duration { return max(c.reuse(), c.ServeStale) }

// Quota is the account's quotas (0 for GetParameters and
// GetParametersByPath: AWS's published ones), this node's share of them,
// and how coffer backs off and spreads remounts (--aws-quota-*,
// --ssm-higher-throughput, --aws-throttle-cooldown, --remount-jitter).
type Quota struct {
	HigherThroughput    bool
	BatchGetSecretValue float64
	GetSecretValue      float64
	GetParameters       float64
	GetParametersByPath float64
	NodeShare           float64
	ThrottleCooldown    time.Duration
	RemountJitter       time.Duration
}

// Quotas are the account's quotas q describes.
func (q Quota) Quotas() quota.Quotas {
	out := quota.Published(q.HigherThroughput)
	out.BatchGetSecretValue, out.GetSecretValue = q.BatchGetSecretValue, q.GetSecretValue
	if q.GetParameters != 0 {
		out.GetParameters = q.GetParameters
		if out.SharedParameterQuota {
			out.GetParametersByPath = q.GetParameters
		}
	}
	if q.GetParametersByPath != 0 && !out.SharedParameterQuota {
		out.GetParametersByPath = q.GetParametersByPath
	}
	return out
}

// Evaluator configures the worker processes that evaluate classes'
// jmesPath and templates (provider/render/isolate).
type Evaluator struct {
	// Workers evaluate at once (0: in this process, without the memory
	// backstop; --evaluator-workers).
	Workers int
	// MemoryBytes one worker may allocate (--evaluator-memory-bytes).
	MemoryBytes int64
	// Timeout of one evaluation (--evaluator-timeout).
	Timeout time.Duration
	// Command starts a worker, and Env is added to its environment
	// (default: this binary, "evaluator"; tests run their own binary).
	Command, Env []string
}

// Controller configures coffer-controller sync's controllers.
type Controller struct {
	// ProviderName is the spec.provider whose classes are synced
	// (--provider-name).
	ProviderName string
	// Namespaces to sync (none: all; --namespaces).
	Namespaces []string
	// Workers sync classes in parallel (--workers).
	Workers int
	// SyncTimeout bounds one class's sync (--sync-timeout).
	SyncTimeout time.Duration
	// TokenTTL is the lifetime of the ServiceAccount tokens requested
	// (--token-ttl).
	TokenTTL time.Duration
	// RestartWorkloads rolls opted-in workloads when what they mount
	// changes (--restart-workloads), RestartDebounce after the first
	// change (--restart-debounce).
	RestartWorkloads bool
	RestartDebounce  time.Duration
}

// FetchAllowance is how many times the response limit
// (Limits.MaxResponseBytes) a mount or sync may fetch before it stops:
// values are larger than their files only when base64-decoded (by a third)
// or reduced by jmesPath, so twice the limit loses no mount that could
// succeed, and bounds what a class can make coffer hold.
const FetchAllowance = 2

// maxMarkedPods bounds the pods whose last mount time is remembered at once
// (those that mounted within the longest window values are kept): far more
// than a node runs. Beyond it, coffer reads AWS more often, never staler.
const maxMarkedPods = 8192

// Defaults is coffer serve's configuration when no flag is given, without
// what comes from the environment ($AWS_REGION, $NODE_NAME): the flags
// take their defaults from it. Commands that do less (coffer-controller sync: no
// cache, no quota) say so in their own Config.
func Defaults() Config {
	return Config{
		Identity: Identity{
			STSAudience:         auth.AudienceSTS,
			PodIdentityIPv4URL:  auth.DefaultPodIdentityIPv4URL,
			PodIdentityIPv6URL:  auth.DefaultPodIdentityIPv6URL,
			PodIdentityTimeout:  2 * time.Second,
			PodIdentityAttempts: 3,
			ServiceAccountTTL:   2 * time.Minute,
			RefreshMargin:       5 * time.Minute,
			SessionScope:        auth.SessionPerPod,
		},
		Server: Server{MountTimeout: 30 * time.Second, ShutdownTimeout: 20 * time.Second, MaxConcurrentMounts: 64},
		Limits: Limits{
			MaxObjects:          256,
			MaxResponseBytes:    render.DriverMaxResponseBytes,
			MaxAttributesBytes:  256 << 10,
			MaxValueBytes:       1 << 20,
			FetchConcurrency:    8,
			MaxCallsPerIdentity: 16,
		},
		Cache: Cache{MaxStaleness: 5 * time.Second, MaxBytes: 64 << 20},
		Quota: &Quota{
			BatchGetSecretValue: 100,
			GetSecretValue:      10000,
			NodeShare:           quota.DefaultNodeShare,
			ThrottleCooldown:    30 * time.Second,
			RemountJitter:       time.Second,
		},
		Evaluator: Evaluator{Workers: isolate.DefaultWorkers, MemoryBytes: isolate.DefaultMemoryBytes, Timeout: isolate.DefaultTimeout},
	}
}

// DefaultController is coffer-controller sync's controller configuration when no
// flag is given.
func DefaultController() Controller {
	return Controller{
		ProviderName:    "aws",
		Workers:         2,
		SyncTimeout:     time.Minute,
		TokenTTL:        10 * time.Minute,
		RestartDebounce: 30 * time.Second,
	}
}
