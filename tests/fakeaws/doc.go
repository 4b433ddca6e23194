// Package fakeaws is a wire-level fake of AWS Secrets Manager and SSM
// Parameter Store, with the STS and EKS Pod Identity pieces that hand out
// role credentials to Kubernetes workloads, and SQS queues that receive the
// change events of writes, for tests, benchmarks and demos.
//
// The unmodified aws-sdk-go-v2 clients talk to it through an endpoint
// override (BaseEndpoint or AWS_ENDPOINT_URL). It speaks the AWS JSON 1.1
// protocol (JSON 1.0 for SQS, and STS's query protocol), verifies SigV4
// signatures against registered identities, enforces a small IAM-like
// permission model,
// partitions data by the region in each request's credential scope, and can
// inject latency, throttling, server errors, hangs, connection resets and
// regional outages. Every call is recorded (without values or tokens) for
// assertions.
//
// In-process use:
//
//	srv, ts := fakeaws.NewTestServer(t)
//	srv.AddIdentity(fakeaws.AllowAll("AKIDTEST", "secret"))
//	srv.PutSecretString("us-east-1", "prod/db", `{"password":"x"}`)
//	cfg := fakeaws.AWSConfig(ts.URL, "us-east-1", "AKIDTEST", "secret", "")
//	client := secretsmanager.NewFromConfig(cfg)
//
// Workload identity: register roles (AddRole) and the keys of a token
// issuer (SetJWKS or SetJWKSURL, e.g. a kube-apiserver's /openid/v1/jwks).
// STS AssumeRoleWithWebIdentity (IRSA), AssumeRole (chaining) and the Pod
// Identity agent (PodIdentityAgent, with AddPodIdentityAssociation) then
// verify ServiceAccount tokens as AWS does and mint temporary credentials
// that Secrets Manager and SSM accept with the role's permissions only.
// Issuer mints such tokens in tests:
//
//	iss, _ := fakeaws.NewIssuer("https://oidc.example")
//	_ = srv.SetJWKS(iss.JWKS())
//	_ = srv.AddRole(fakeaws.Role{
//		ARN:             "arn:aws:iam::123456789012:role/app",
//		TrustedSubjects: []string{"system:serviceaccount:team-a:app"},
//		Actions:         []string{"secretsmanager:GetSecretValue"},
//		Resources:       []string{"arn:aws:secretsmanager:*:*:secret:app/*"},
//	})
//	token := iss.Token("system:serviceaccount:team-a:app", []string{"sts.amazonaws.com"}, time.Hour)
//
// # Change events and SQS
//
// The fake also serves SQS (AWS JSON 1.0, as the SDK speaks it): GetQueueUrl,
// ReceiveMessage (long polling with WaitTimeSeconds, up to ten messages,
// VisibilityTimeout, receipt handles, the ApproximateReceiveCount,
// SentTimestamp, ApproximateFirstReceiveTimestamp and SenderId attributes),
// DeleteMessage, DeleteMessageBatch, SendMessage and GetQueueAttributes,
// with SQS's errors (ReceiptHandleIsInvalid, TooManyEntriesInBatchRequest,
// EmptyBatchRequest, BatchEntryIdsNotDistinct, InvalidBatchEntryId,
// NonExistentQueue, InvalidParameterValue) under the codes the SDK reports.
// A receipt handle superseded by a later receive, or of a deleted message,
// deletes nothing and is no error, as in SQS. Queues are standard queues
// (AddQueue, or the seed's queues); their time (delays, visibility, long
// polls) is Options.Clock's, so tests step a fake clock.
//
// A queue that names event sources is an EventBridge rule's target: every
// successful write, through the wire or the Go API (PutSecretString,
// PutParameter, SetSecretStage, DeleteSecret, LabelParameter,
// DeleteParameter, SetRolePermissions, ChangeRole), puts its event into the
// queues of its region before the writer hears of its success, the body
// being the event as EventBridge sends it to an SQS target:
//
//   - Parameter Store: "Parameter Store Change" from aws.ssm, detail
//     {operation, name, type, description}, for PutParameter (Create,
//     Update), DeleteParameter and DeleteParameters (Delete) and
//     LabelParameterVersion; resources holds the parameter's ARN.
//   - Secrets Manager: "AWS API Call via CloudTrail" from
//     aws.secretsmanager, detail a CloudTrail record (eventSource
//     secretsmanager.amazonaws.com, eventName, requestParameters with the
//     secretId, responseElements with the secret's arn, userIdentity,
//     eventTime, eventID, ...) for CreateSecret, PutSecretValue,
//     UpdateSecret, UpdateSecretVersionStage, DeleteSecret, RestoreSecret
//     and PutResourcePolicy (accepted and announced; the fake's permission
//     model has no resource policies).
//   - IAM: the same record from aws.iam, delivered in us-east-1 as AWS
//     delivers IAM's, for PutRolePolicy, DeleteRolePolicy, AttachRolePolicy,
//     DetachRolePolicy and UpdateAssumeRolePolicy. The fake has no IAM API
//     (its permissions are not IAM policy documents): ChangeRole applies a
//     change to a role and its live sessions and announces it.
//
// No event holds a value: CloudTrail records no SecretString or
// SecretBinary, Parameter Store's events carry no value, and the fake
// leaves out the caller's access key id too. Seeding sends no events.
//
// SetDelivery (or the seed's eventDelivery) makes delivery late (a delay
// plus jitter), lossy, duplicated (EventBridge delivering one event twice:
// one body, two messages) and reordered (a message overtakes up to a
// window of unreceived ones), all drawn from a seeded source, so the same
// writes give the same deliveries every run.
//
// What a consumer can verify: anyone allowed sqs:SendMessage on the queue
// can send a body identical to an event, id and all; nothing in a body
// tells it from AWS's. SQS's SenderId attribute is set by SQS, not the
// sender (the fake gives EventBridge's messages its own fixed id and a
// sender's its principal ARN), but AWS does not document EventBridge's
// value. What holds is the queue's policy (only events.amazonaws.com, for
// the rule's ARN, may send) and the consumer's own checks (account,
// region, source, detail-type); an event is a reason to read AWS again,
// never a value to trust.
//
// The standalone server in cmd/fakeaws serves the same handler, seeded from
// a YAML file (see Seed).
package fakeaws
