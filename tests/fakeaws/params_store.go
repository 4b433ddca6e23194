package fakeaws

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Parameter types.
const (
	TypeString       = "String"
	TypeStringList   = "StringList"
	TypeSecureString = "SecureString"
)

// maxLabelsPerVersion is SSM's limit on labels attached to one version.
const maxLabelsPerVersion = 10

// parameter is one SSM parameter with its full history. Guarded by
// Server.dataMu.
type parameter struct {
	name     string
	versions []*paramVersion // versions[i].version == i+1
}

type paramVersion struct {
	version  int64
	typ      string
	value    string
	labels   []string
	modified time.Time
}

func (p *parameter) latest() *paramVersion { return p.versions[len(p.versions)-1] }

// selectVersion resolves a selector: "" (latest), a version number or a
// label.
func (p *parameter) selectVersion(selector string) (*paramVersion, bool) {
	if selector == "" {
		return p.latest(), true
	}
	if n, err := strconv.ParseInt(selector, 10, 64); err == nil {
		if n < 1 || n > int64(len(p.versions)) {
			return nil, false
		}
		return p.versions[n-1], true
	}
	for _, v := range p.versions {
		if slices.Contains(v.labels, selector) {
			return v, true
		}
	}
	return nil, false
}

// putVersion appends a version; the type carries over when typ is empty.
func (p *parameter) putVersion(value, typ string, now time.Time) int64 {
	if typ == "" {
		typ = p.latest().typ
	}
	v := &paramVersion{version: int64(len(p.versions) + 1), typ: typ, value: value, modified: now}
	p.versions = append(p.versions, v)
	return v.version
}

// labelRE is SSM's label syntax; labels additionally may not start with a
// digit or with "aws"/"ssm".
var labelRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)

func validLabel(l string) bool {
	lower := strings.ToLower(l)
	return labelRE.MatchString(l) && !(l[0] >= '0' && l[0] <= '9') &&
		!strings.HasPrefix(lower, "aws") && !strings.HasPrefix(lower, "ssm")
}

// label attaches labels to a version, moving each from whichever version
// had it. Invalid labels are returned instead of applied, as
// LabelParameterVersion reports them in InvalidLabels.
func (p *parameter) label(v *paramVersion, labels []string) (invalid []string, err *apiError) {
	var valid []string
	for _, l := range labels {
		if validLabel(l) {
			if !slices.Contains(valid, l) {
				valid = append(valid, l)
			}
		} else {
			invalid = append(invalid, l)
		}
	}
	added := 0
	for _, l := range valid {
		if !slices.Contains(v.labels, l) {
			added++
		}
	}
	if len(v.labels)+added > maxLabelsPerVersion {
		return nil, clientErr("ParameterVersionLabelLimitExceeded", "A parameter version can have maximum %d labels.", maxLabelsPerVersion)
	}
	for _, l := range valid {
		for _, other := range p.versions {
			other.labels = slices.DeleteFunc(other.labels, func(x string) bool { return x == l })
		}
		v.labels = append(v.labels, l)
	}
	return invalid, nil
}

// paramARN is arn:aws:ssm:<region>:<account>:parameter/<name without its
// leading slash>.
func (s *Server) paramARN(region, name string) string {
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", region, s.account, strings.TrimPrefix(name, "/"))
}

// ciphertext stands in for the KMS ciphertext that SSM returns for a
// SecureString read without decryption: opaque, stable per version, and
// unrelated to the plaintext.
func ciphertext(arn string, version int64) string {
	sum := sha256.Sum256([]byte(arn + ":" + strconv.FormatInt(version, 10)))
	return "AQICAHfakeaws" + base64.StdEncoding.EncodeToString(sum[:])
}

func validParamType(t string) bool {
	return t == TypeString || t == TypeStringList || t == TypeSecureString
}

// PutParameter stores a value in region as a new version (creating the
// parameter at version 1) and returns the version. typ defaults to String on
// creation and to the current type afterwards. The change is announced as
// PutParameter's (Create or Update). It panics on an unknown type, a
// programming error in the test that calls it.
func (s *Server) PutParameter(region, name, value, typ string) (version int64) {
	if typ != "" && !validParamType(typ) {
		panic(fmt.Sprintf("fakeaws: PutParameter(%q): unknown parameter type %q", name, typ))
	}
	s.dataMu.Lock()
	operation := "Create"
	if _, exists := s.regionRead(region).params[name]; exists {
		operation = "Update"
	}
	version = s.putParamLocked(region, name, value, typ)
	ev := s.ssmEvent(region, operation, name, s.regionRead(region).params[name].latest().typ, "")
	s.dataMu.Unlock()
	s.publish(ev)
	return version
}

func (s *Server) putParamLocked(region, name, value, typ string) int64 {
	rd := s.region(region)
	p, ok := rd.params[name]
	if !ok {
		if typ == "" {
			typ = TypeString
		}
		p = &parameter{name: name}
		rd.params[name] = p
		p.versions = append(p.versions, &paramVersion{version: 1, typ: typ, value: value, modified: s.now()})
		return 1
	}
	return p.putVersion(value, typ, s.now())
}

// LabelParameter attaches labels to a version of a parameter (moving them
// from other versions), announced as LabelParameterVersion would be.
func (s *Server) LabelParameter(region, name string, version int64, labels ...string) error {
	if err := s.labelParameter(region, name, version, labels); err != nil {
		return err
	}
	s.publish(s.ssmEvent(region, "LabelParameterVersion", name, s.paramType(region, name), ""))
	return nil
}

// paramType is the type of a parameter's latest version ("" if gone).
func (s *Server) paramType(region, name string) string {
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	if p, ok := s.regionRead(region).params[name]; ok {
		return p.latest().typ
	}
	return ""
}

func (s *Server) labelParameter(region, name string, version int64, labels []string) error {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	p, ok := s.regionRead(region).params[name]
	if !ok {
		return fmt.Errorf("fakeaws: no parameter %s in %s", name, region)
	}
	v, ok := p.selectVersion(strconv.FormatInt(version, 10))
	if !ok {
		return fmt.Errorf("fakeaws: parameter %s has no version %d", name, version)
	}
	invalid, e := p.label(v, labels)
	if e != nil {
		return e
	}
	if len(invalid) > 0 {
		return fmt.Errorf("fakeaws: invalid labels %q", invalid)
	}
	return nil
}

// DeleteParameter removes a parameter and all its versions, reporting
// whether it existed (and announcing it, as DeleteParameter would).
func (s *Server) DeleteParameter(region, name string) bool {
	s.dataMu.Lock()
	rd := s.regionRead(region)
	p, ok := rd.params[name]
	if !ok {
		s.dataMu.Unlock()
		return false
	}
	delete(rd.params, name)
	ev := s.ssmEvent(region, "Delete", name, p.latest().typ, "")
	s.dataMu.Unlock()
	s.publish(ev)
	return true
}

// sortedParamNames returns the region's parameter names in order, the order
// GetParametersByPath pages through. Callers hold dataMu.
func (rd *regionData) sortedParamNames() []string {
	names := make([]string, 0, len(rd.params))
	for n := range rd.params {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
