package changes

import (
	"errors"
	"regexp"
	"strings"
)

// Subject names what an announcement or a cached value is about: a secret
// or a parameter in an account and region, or a role of an account.
// Subjects are compared whole, so both sides build them with the functions
// below, which normalize every spelling AWS accepts for the same thing.
// Where a spelling is ambiguous (a secret ARN's last seven characters may
// be AWS's random suffix or part of the name), they return every reading:
// an extra match costs a read, a missed one would serve an old value.
type Subject struct {
	Kind    Kind   `json:"k"`
	Account string `json:"a"`
	Region  string `json:"r,omitempty"`
	Name    string `json:"n"`
}

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	regionPattern  = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	// secretSuffix is the six random characters AWS appends to a secret's
	// name in its full ARN.
	secretSuffix = regexp.MustCompile(`-[A-Za-z0-9]{6}$`)
)

func validAccount(a string) bool { return accountPattern.MatchString(a) }
func validRegion(r string) bool  { return regionPattern.MatchString(r) }

func (s Subject) validate() error {
	switch {
	case s.Kind != KindSecret && s.Kind != KindParameter && s.Kind != KindRole:
		return errors.New("unknown kind")
	case !validAccount(s.Account):
		return errors.New("the account is not a 12-digit account id")
	case s.Kind == KindRole && s.Region != "":
		return errors.New("a role has no region")
	case s.Kind != KindRole && !validRegion(s.Region):
		return errors.New("the region is not an AWS region")
	case s.Name == "" || len(s.Name) > MaxNameBytes:
		return errors.New("the name is empty or too long")
	}
	return nil
}

// arn is an ARN's fields; ok is false for anything else.
type arn struct {
	service, region, account, resource string
}

func parseARN(s string) (arn, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || !strings.HasPrefix(parts[1], "aws") {
		return arn{}, false
	}
	return arn{service: parts[2], region: parts[3], account: parts[4], resource: parts[5]}, true
}

// Secrets returns the subjects of a secret named by id: a name (in the
// given account and region), or a full or partial ARN (whose account and
// region win). Nil when id is an ARN of something else.
func Secrets(account, region, id string) []Subject {
	name := id
	if a, ok := parseARN(id); ok {
		res, found := strings.CutPrefix(a.resource, "secret:")
		if a.service != "secretsmanager" || !found {
			return nil
		}
		account, region, name = a.account, a.region, res
		if secretSuffix.MatchString(name) {
			// A full ARN, or a partial one of a name that ends like a
			// suffix: both readings.
			return validSubjects(
				Subject{Kind: KindSecret, Account: account, Region: region, Name: name[:len(name)-7]},
				Subject{Kind: KindSecret, Account: account, Region: region, Name: name})
		}
	}
	return validSubjects(Subject{Kind: KindSecret, Account: account, Region: region, Name: name})
}

// Parameter returns the subject of a parameter named by name or ARN. The
// leading slash is dropped: an ARN spells /a/b as parameter/a/b.
func Parameter(account, region, name string) []Subject {
	if a, ok := parseARN(name); ok {
		res, found := strings.CutPrefix(a.resource, "parameter/")
		if a.service != "ssm" || !found {
			return nil
		}
		account, region, name = a.account, a.region, res
	}
	return validSubjects(Subject{Kind: KindParameter, Account: account, Region: region, Name: strings.TrimPrefix(name, "/")})
}

// Role returns the subject of a role named by its ARN (with or without a
// path), or by its name in account. Role names are unique per account
// whatever their case, so the name is compared in lower case.
func Role(account, nameOrARN string) []Subject {
	name := nameOrARN
	if a, ok := parseARN(nameOrARN); ok {
		res, found := strings.CutPrefix(a.resource, "role/")
		if a.service != "iam" || !found {
			return nil
		}
		account = a.account
		name = res[strings.LastIndexByte(res, '/')+1:]
	}
	return validSubjects(Subject{Kind: KindRole, Account: account, Name: strings.ToLower(name)})
}

// RoleAccount returns the account of a role ARN ("" for anything else).
func RoleAccount(roleARN string) string {
	a, ok := parseARN(roleARN)
	if !ok || a.service != "iam" || !validAccount(a.account) {
		return ""
	}
	return a.account
}

func validSubjects(subjects ...Subject) []Subject {
	out := subjects[:0]
	for _, s := range subjects {
		if s.validate() == nil {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
