package spc

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ObjectType is the AWS service an object is read from.
type ObjectType string

const (
	SecretsManager ObjectType = "secretsmanager"
	ParameterStore ObjectType = "ssmparameter"
)

// Title names the service in messages.
func (t ObjectType) Title() string {
	if t == ParameterStore {
		return "Parameter Store"
	}
	return "Secrets Manager"
}

// Service returns the AWS service name used in ARNs and IAM actions.
func (t ObjectType) Service() string {
	if t == ParameterStore {
		return "ssm"
	}
	return "secretsmanager"
}

// regionPattern matches AWS region codes: us-east-1, eu-central-2,
// us-gov-west-1, cn-north-1, ap-southeast-5, il-central-1, eusc-de-east-1 ...
var regionPattern = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)

// ValidRegion reports whether r looks like an AWS region code.
func ValidRegion(r string) bool { return regionPattern.MatchString(r) }

// ARN is the part of an Amazon Resource Name coffer needs.
type ARN struct {
	Partition, Service, Region, Account, Resource string
}

var accountPattern = regexp.MustCompile(`^[0-9]{12}$`)

// ParseARN splits an ARN and checks the fields coffer relies on.
func ParseARN(s string) (ARN, error) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return ARN{}, fmt.Errorf("not an ARN: want arn:<partition>:<service>:<region>:<account>:<resource>")
	}
	a := ARN{Partition: parts[1], Service: parts[2], Region: parts[3], Account: parts[4], Resource: parts[5]}
	switch {
	case !strings.HasPrefix(a.Partition, "aws"):
		return ARN{}, fmt.Errorf("ARN partition %q is not an AWS partition (aws, aws-cn, aws-us-gov ...)", a.Partition)
	case !ValidRegion(a.Region):
		return ARN{}, fmt.Errorf("ARN region %q is not a region code like us-east-1", a.Region)
	case !accountPattern.MatchString(a.Account):
		return ARN{}, fmt.Errorf("ARN account %q is not a 12-digit account id", a.Account)
	case a.Resource == "":
		return ARN{}, fmt.Errorf("ARN has no resource part")
	}
	return a, nil
}

func (a ARN) String() string {
	return strings.Join([]string{"arn", a.Partition, a.Service, a.Region, a.Account, a.Resource}, ":")
}

// typeOfARN maps an ARN's service and resource to the object type it names.
func typeOfARN(a ARN) (ObjectType, error) {
	switch a.Service {
	case "secretsmanager":
		if !strings.HasPrefix(a.Resource, "secret:") || len(a.Resource) == len("secret:") {
			return "", fmt.Errorf("a Secrets Manager ARN's resource must be secret:<name>, got %q", a.Resource)
		}
		return SecretsManager, nil
	case "ssm":
		if !strings.HasPrefix(a.Resource, "parameter/") || len(a.Resource) == len("parameter/") {
			return "", fmt.Errorf("a Parameter Store ARN's resource must be parameter/<name>, got %q", a.Resource)
		}
		return ParameterStore, nil
	default:
		return "", fmt.Errorf("ARN service %q is neither secretsmanager nor ssm", a.Service)
	}
}

// The patterns check characters; lengths are checked apart (inLength):
// Go's regexp compiles a repeat count such as {1,512} into that many
// copies, which cost 600 KB of memory held for the life of the process.
var (
	// Secrets Manager secret names: 1-512 of these characters.
	secretNamePattern = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)
	// Parameter Store names: letters, digits and . - _ with / as the
	// hierarchy separator, at most 2048 characters (checked apart: Go's
	// regexp allows repeat counts up to 1000 only).
	parameterNamePattern = regexp.MustCompile(`^[A-Za-z0-9/_.-]+$`)
	// Secrets Manager VersionIds are 32-64 characters (UUIDs in practice).
	versionIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
	// Staging and parameter labels: 1-256 characters.
	labelPattern = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+$`)
)

func inLength(s string, min, max int) bool { return len(s) >= min && len(s) <= max }

// checkName validates a plain (non-ARN) object name for its service.
func checkName(t ObjectType, name string) error {
	switch t {
	case SecretsManager:
		if !inLength(name, 1, 512) || !secretNamePattern.MatchString(name) {
			return fmt.Errorf("%q is not a valid Secrets Manager secret name (1-512 characters of letters, digits and /_+=.@-)", name)
		}
	case ParameterStore:
		if len(name) > 2048 || !parameterNamePattern.MatchString(name) {
			return fmt.Errorf("%q is not a valid Parameter Store name (letters, digits and _.-, with / between path levels)", name)
		}
		if strings.Count(name, "/") > 15 {
			return fmt.Errorf("%q has more than 15 path levels, which Parameter Store does not allow", name)
		}
		if strings.HasSuffix(name, "/") {
			return fmt.Errorf("%q ends with /, which names a path, not a parameter", name)
		}
		if strings.Contains(name, "/") && !strings.HasPrefix(name, "/") {
			return fmt.Errorf("%q has path levels but no leading /; Parameter Store names with levels start with / (write \"/%s\")", name, name)
		}
	}
	return nil
}

// checkVersion validates objectVersion for its service.
func checkVersion(t ObjectType, v string) error {
	switch t {
	case ParameterStore:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a Parameter Store version; use a positive whole number such as \"3\"", v)
		}
	case SecretsManager:
		if !inLength(v, 32, 64) || !versionIDPattern.MatchString(v) {
			return fmt.Errorf("%q is not a Secrets Manager VersionId (32-64 characters, usually a UUID); to pick a staging label such as AWSPREVIOUS use objectVersionLabel", v)
		}
	}
	return nil
}

func checkLabel(v string) error {
	if !inLength(v, 1, 256) || !labelPattern.MatchString(v) {
		return fmt.Errorf("%q is not a valid label (1-256 letters, digits and _.-/)", v)
	}
	return nil
}

// externalIDPattern matches an sts:ExternalId's characters; its length (2-1224)
// is checked apart, as Go's regexp allows repeat counts up to 1000 only.
var externalIDPattern = regexp.MustCompile(`^[\w+=,.@:/-]+$`)

func validExternalID(s string) bool {
	return len(s) >= 2 && len(s) <= 1224 && externalIDPattern.MatchString(s)
}

// checkRoleARN validates an IAM role ARN (arn:aws:iam::123456789012:role/name).
func checkRoleARN(s string) error {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !strings.HasPrefix(parts[1], "aws") || parts[2] != "iam" || parts[3] != "" ||
		!accountPattern.MatchString(parts[4]) || !strings.HasPrefix(parts[5], "role/") || len(parts[5]) == len("role/") {
		return fmt.Errorf("%q is not an IAM role ARN; use arn:aws:iam::<12-digit account>:role/<name>", s)
	}
	return nil
}
