// Package auth turns the identity of the workload behind a Mount request
// into AWS credentials. Every pod reaches AWS as its own identity; the Key of
// an Identity names everything that determines its credentials, so callers
// can reuse credentials and fetched values per identity and never across
// identities.
package auth

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Request describes the workload a Mount is for.
type Request struct {
	Namespace, PodName, PodUID, ServiceAccount string
	// Tokens is the driver's csi.storage.k8s.io/serviceAccount.tokens
	// attribute: ServiceAccount tokens by audience. Never log it.
	Tokens               string
	UsePodIdentity       bool
	PreferredAddressType string
	Region               string
	AssumeRoleARN        string
	AssumeRoleExternalID string
}

// Identity is the AWS identity a request resolved to.
type Identity struct {
	// Key identifies the credentials: two identities with equal keys hold
	// interchangeable credentials. It holds no secret.
	Key string
	// CredentialKey identifies the credentials themselves: Key and the STS
	// session (the pod) they were issued to. Clients and invalidation
	// follow it; fetched values may follow Key.
	CredentialKey string
	// Description names the identity in logs (a role ARN, "node").
	Description string
	// Roles are the IAM roles whose permissions decide what the
	// credentials may read, the last one the role that reads: the
	// ServiceAccount's IRSA role, then the role chained from it. Empty
	// when coffer does not know them (EKS Pod Identity, whose agent
	// chooses the role; the node's own credentials).
	Roles       []string
	Credentials aws.CredentialsProvider
}

// NodeCredentials hands every request the provider's own credentials (the
// AWS SDK's default chain). It exists for development and for the CLI's
// mount command; it must never be how a provider in a cluster serves pods,
// because every pod would read AWS with the node's permissions.
type NodeCredentials struct {
	Credentials aws.CredentialsProvider
}

// Identity returns the node's credentials, whoever asks.
func (n NodeCredentials) Identity(context.Context, Request) (Identity, error) {
	return Identity{Key: "node", CredentialKey: "node", Description: "the provider's own AWS credentials", Credentials: n.Credentials}, nil
}

// Reasons an identity cannot be resolved (bounded: usable as metric labels).
const (
	ReasonNoToken      = "no_token"
	ReasonNoRole       = "no_role"
	ReasonConfig       = "config"
	ReasonDenied       = "denied"
	ReasonInvalidToken = "invalid_token"
	// ReasonUnauthenticated: coffer refused the token itself (not signed
	// by the cluster, expired, another audience, or issued to another
	// ServiceAccount or pod than the mount's attributes name).
	ReasonUnauthenticated = "unauthenticated"
	ReasonUnreachable     = "unreachable"
	ReasonOther           = "other"
)

// Error is a failure to obtain a workload's AWS credentials. Its message
// says what the user must change; it never contains a token or credential.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }
