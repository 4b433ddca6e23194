package auth

import (
	"fmt"
	"regexp"
	"strings"
)

var rolePattern = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)

// checkRole validates an IAM role ARN.
func checkRole(arn string) error {
	if !rolePattern.MatchString(arn) || len(arn) > 2048 {
		return fmt.Errorf("%q is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)", arn)
	}
	return nil
}

var sessionUnsafe = regexp.MustCompile(`[^\w+=,.@-]`)

// sessionName names an STS session after the pod, so CloudTrail shows which
// workload read what: coffer-<namespace>-<pod>, within STS's 64 characters.
// The pod name is one the token proves (verify), and credentials are reused
// only under the same session name (credentialKey), so the name stays true
// for every call made with them.
func sessionName(namespace, pod string) string {
	name := sessionUnsafe.ReplaceAllString("coffer-"+namespace+"-"+pod, "-")
	if len(name) > 64 {
		name = name[:64]
	}
	return strings.TrimRight(name, "-")
}
