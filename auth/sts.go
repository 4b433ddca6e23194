package auth

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

// stsClients builds STS clients from the provider's base AWS configuration,
// so STS honours the same endpoint settings as every other call: regional
// endpoint, FIPS, dual-stack, AWS_ENDPOINT_URL(_STS).
type stsClients struct {
	base aws.Config
}

// client returns an STS client for region that signs with creds (nil:
// anonymous, as AssumeRoleWithWebIdentity is).
func (s stsClients) client(region string, creds aws.CredentialsProvider) *sts.Client {
	cfg := s.base.Copy()
	cfg.Region = region
	cfg.Credentials = creds
	if creds == nil {
		cfg.Credentials = aws.AnonymousCredentials{}
	}
	return sts.NewFromConfig(cfg)
}

// assumeRoleWithWebIdentity exchanges a ServiceAccount token for the
// credentials of role (IRSA).
func (s stsClients) assumeRoleWithWebIdentity(ctx context.Context, region, role, session, token, subject string) (aws.Credentials, error) {
	out, err := s.client(region, nil).AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(role),
		RoleSessionName:  aws.String(session),
		WebIdentityToken: aws.String(token),
	})
	if err != nil {
		return aws.Credentials{}, withoutToken(stsError(err, fmt.Sprintf("STS would not let %s assume role %s", subject, role),
			fmt.Sprintf("the role's trust policy must allow sts:AssumeRoleWithWebIdentity from the cluster's OIDC provider for sub %q and aud %q", subject, AudienceSTS)), token)
	}
	return stsCredentials(out.Credentials, "AssumeRoleWithWebIdentity")
}

// assumeRole chains from base credentials into role (cross-account).
func (s stsClients) assumeRole(ctx context.Context, region string, base aws.CredentialsProvider, from, role, externalID, session string) (aws.Credentials, error) {
	in := &sts.AssumeRoleInput{RoleArn: aws.String(role), RoleSessionName: aws.String(session)}
	if externalID != "" {
		in.ExternalId = aws.String(externalID)
	}
	out, err := s.client(region, base).AssumeRole(ctx, in)
	if err != nil {
		return aws.Credentials{}, stsError(err, fmt.Sprintf("STS would not let %s assume role %s (assumeRoleArn)", from, role),
			fmt.Sprintf("the pod's role needs sts:AssumeRole on %s, and that role's trust policy must trust the pod's role (and require the same assumeRoleExternalId, if any)", role))
	}
	return stsCredentials(out.Credentials, "AssumeRole")
}

func stsCredentials(c *types.Credentials, op string) (aws.Credentials, error) {
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.Expiration == nil {
		return aws.Credentials{}, &Error{Reason: ReasonOther, Msg: "STS " + op + " answered without complete credentials"}
	}
	return aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "coffer-sts-" + op,
		CanExpire:       true,
		Expires:         *c.Expiration,
	}, nil
}

// stsError turns an STS failure into an Error with a reason and a fix.
func stsError(err error, what, fix string) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := fmt.Sprintf("%s (%s: %s)", what, ae.ErrorCode(), ae.ErrorMessage())
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException":
			return &Error{Reason: ReasonDenied, Msg: msg + "; " + fix}
		case "InvalidIdentityToken", "ExpiredTokenException", "IDPRejectedClaim":
			return &Error{Reason: ReasonInvalidToken, Msg: msg + "; check that the cluster's OIDC issuer is registered as an IAM identity provider and the token audience is " + AudienceSTS}
		case "IDPCommunicationError", "Throttling", "ThrottlingException", "InternalFailure", "ServiceUnavailable":
			return &Error{Reason: ReasonUnreachable, Msg: msg + "; a transient STS problem, retried on the next mount"}
		case "RegionDisabledException":
			return &Error{Reason: ReasonConfig, Msg: msg + "; activate STS in this region in the IAM console, or set another region"}
		}
		return &Error{Reason: ReasonOther, Msg: msg}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Reason: ReasonUnreachable, Msg: what + ": STS did not answer; check the node's network path to the STS endpoint", Err: err}
	}
	return &Error{Reason: ReasonOther, Msg: what, Err: err}
}

// maxSTSMessage bounds an STS failure's text once it had to be redacted.
const maxSTSMessage = 4096

// withoutToken makes sure err, whose text quotes what STS answered, holds
// no piece of token: STS does not echo the token it was sent, but an
// endpoint in between (AWS_ENDPOINT_URL_STS) might. An error that holds
// one is replaced by its redacted text, cut to maxSTSMessage.
func withoutToken(err error, token string) error {
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	msg := e.Error()
	if clean := redact(msg, token, maxSTSMessage); clean != msg {
		return &Error{Reason: e.Reason, Msg: clean}
	}
	return err
}
