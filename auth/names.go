package auth

import (
	"crypto/sha256"
	"encoding/hex"
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
// for every call made with them. A longer name keeps its start and ends in
// a digest of the namespace and pod: the pods of one ReplicaSet differ only
// in their last characters, which a plain cut would drop, giving them all
// one session name and one set of credentials.
func sessionName(namespace, pod string) string {
	name := sessionUnsafe.ReplaceAllString("coffer-"+namespace+"-"+pod, "-")
	if len(name) > maxSessionName {
		sum := sha256.Sum256([]byte(namespace + "/" + pod))
		digest := hex.EncodeToString(sum[:4])
		name = strings.TrimRight(name[:maxSessionName-len(digest)-1], "-") + "-" + digest
	}
	return strings.TrimRight(name, "-")
}

// maxSessionName is STS's limit on a role session name.
const maxSessionName = 64
