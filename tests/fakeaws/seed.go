package fakeaws

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"gopkg.in/yaml.v3"
)

// Seed is the YAML seed format, used by the standalone server and handy in
// tests. Example:
//
//	identities:
//	  - accessKeyId: AKIDDEMO
//	    secretAccessKey: demo-secret-key
//	    name: arn:aws:iam::123456789012:user/demo   # principal ARN (optional)
//	    actions: ["*"]
//	    resources: ["*"]
//	secrets:
//	  - regions: [us-east-1, us-west-2]
//	    name: prod/db
//	    tags: {team: payments}
//	    versions:                 # oldest first; each becomes AWSCURRENT
//	      - string: '{"password":"old"}'
//	      - string: '{"password":"new"}'
//	  - region: us-east-1
//	    name: prod/tls-cert
//	    binary: aGVsbG8=           # base64
//	parameters:
//	  - region: us-east-1
//	    name: /app/prod/token
//	    type: SecureString
//	    values: [v1, v2]           # history: version n is values[n-1]
//	    labels: {stable: 1}
//	roles:                         # assumable through STS and the Pod Identity agent
//	  - arn: arn:aws:iam::123456789012:role/team-a
//	    trustedSubjects: ["system:serviceaccount:team-a:*"]
//	    trustedAudiences: [sts.amazonaws.com]   # the default
//	    trustedRoles: [arn:aws:iam::123456789012:role/broker]
//	    externalId: ""
//	    maxSessionDuration: 1h
//	    credentialLifetime: 0s
//	    actions: [secretsmanager:GetSecretValue]
//	    resources: ["arn:aws:secretsmanager:*:*:secret:team-a/*"]
//	podIdentityAssociations:
//	  - namespace: team-a
//	    serviceAccount: app
//	    roleArn: arn:aws:iam::123456789012:role/team-a
//	queues:                        # SQS; created after the data, so seeding sends no events
//	  - region: us-east-1
//	    name: coffer-events
//	    eventSources: [aws.ssm, aws.secretsmanager, aws.iam]   # EventBridge rules targeting it
//	    visibilityTimeout: 30s
//	eventDelivery:                 # faults of event delivery (Delivery)
//	  seed: 1
//	  delay: 2s
//	  jitter: 1s
//	  loss: 0.01
//	  duplicate: 0.05
//	  reorderWindow: 3
type Seed struct {
	Identities              []SeedIdentity               `yaml:"identities"`
	Secrets                 []SeedSecret                 `yaml:"secrets"`
	Parameters              []SeedParameter              `yaml:"parameters"`
	Roles                   []SeedRole                   `yaml:"roles"`
	PodIdentityAssociations []SeedPodIdentityAssociation `yaml:"podIdentityAssociations"`
	Queues                  []SeedQueue                  `yaml:"queues"`
	EventDelivery           *SeedDelivery                `yaml:"eventDelivery"`
}

// SeedQueue mirrors Queue, in one or more regions.
type SeedQueue struct {
	Region            string        `yaml:"region"`
	Regions           []string      `yaml:"regions"`
	Name              string        `yaml:"name"`
	EventSources      []string      `yaml:"eventSources"`
	VisibilityTimeout time.Duration `yaml:"visibilityTimeout"`
}

// SeedDelivery mirrors Delivery.
type SeedDelivery struct {
	Seed          uint64        `yaml:"seed"`
	Delay         time.Duration `yaml:"delay"`
	Jitter        time.Duration `yaml:"jitter"`
	Loss          float64       `yaml:"loss"`
	Duplicate     float64       `yaml:"duplicate"`
	ReorderWindow int           `yaml:"reorderWindow"`
}

// SeedIdentity mirrors Identity.
type SeedIdentity struct {
	AccessKeyID     string      `yaml:"accessKeyId"`
	SecretAccessKey string      `yaml:"secretAccessKey"`
	SessionToken    string      `yaml:"sessionToken"`
	Name            string      `yaml:"name"` // principal ARN
	Actions         []string    `yaml:"actions"`
	Resources       []string    `yaml:"resources"`
	Statements      []Statement `yaml:"statements"`
}

// SeedRole mirrors Role.
type SeedRole struct {
	ARN                string        `yaml:"arn"`
	TrustedSubjects    []string      `yaml:"trustedSubjects"`
	TrustedAudiences   []string      `yaml:"trustedAudiences"`
	TrustedRoles       []string      `yaml:"trustedRoles"`
	ExternalID         string        `yaml:"externalId"`
	Actions            []string      `yaml:"actions"`
	Resources          []string      `yaml:"resources"`
	Statements         []Statement   `yaml:"statements"`
	MaxSessionDuration time.Duration `yaml:"maxSessionDuration"` // e.g. "12h"
	CredentialLifetime time.Duration `yaml:"credentialLifetime"`
}

func (r *SeedRole) role() Role {
	return Role{
		ARN:                r.ARN,
		TrustedSubjects:    r.TrustedSubjects,
		TrustedAudiences:   r.TrustedAudiences,
		TrustedRoles:       r.TrustedRoles,
		ExternalID:         r.ExternalID,
		Actions:            r.Actions,
		Resources:          r.Resources,
		Statements:         r.Statements,
		MaxSessionDuration: r.MaxSessionDuration,
		CredentialLifetime: r.CredentialLifetime,
	}
}

// SeedPodIdentityAssociation mirrors AddPodIdentityAssociation.
type SeedPodIdentityAssociation struct {
	Namespace      string `yaml:"namespace"`
	ServiceAccount string `yaml:"serviceAccount"`
	RoleARN        string `yaml:"roleArn"`
}

// SeedSecret is a secret in one or more regions. Give either a single value
// (string or binary) or a list of versions.
type SeedSecret struct {
	Region      string              `yaml:"region"`
	Regions     []string            `yaml:"regions"`
	Name        string              `yaml:"name"`
	Description string              `yaml:"description"`
	Tags        map[string]string   `yaml:"tags"`
	String      *string             `yaml:"string"`
	Binary      *string             `yaml:"binary"` // base64
	Versions    []SeedSecretVersion `yaml:"versions"`
}

// SeedSecretVersion is one version. Without stages it is stored like
// PutSecretValue stores a value: it becomes AWSCURRENT and the previous
// current version becomes AWSPREVIOUS. With stages, exactly those labels are
// moved to it.
type SeedSecretVersion struct {
	VersionID string   `yaml:"versionId"`
	String    *string  `yaml:"string"`
	Binary    *string  `yaml:"binary"` // base64
	Stages    []string `yaml:"stages"`
}

// SeedParameter is a parameter in one or more regions. Give either value or
// values (the version history, oldest first).
type SeedParameter struct {
	Region  string           `yaml:"region"`
	Regions []string         `yaml:"regions"`
	Name    string           `yaml:"name"`
	Type    string           `yaml:"type"` // String (default), StringList or SecureString
	Value   *string          `yaml:"value"`
	Values  []string         `yaml:"values"`
	Labels  map[string]int64 `yaml:"labels"` // label → version
}

// LoadSeed parses and validates a YAML seed. Unknown keys are errors, so a
// typo in a seed file fails loudly instead of silently seeding less.
func LoadSeed(r io.Reader) (*Seed, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var seed Seed
	if err := dec.Decode(&seed); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("fakeaws: parse seed: %w", err)
	}
	if err := seed.validate(); err != nil {
		return nil, err
	}
	return &seed, nil
}

func regionsOf(region string, regions []string) []string {
	if region != "" {
		return append([]string{region}, regions...)
	}
	return regions
}

func (seed *Seed) validate() error {
	var errs []error
	for i, id := range seed.Identities {
		if id.AccessKeyID == "" || id.SecretAccessKey == "" {
			errs = append(errs, fmt.Errorf("identities[%d]: accessKeyId and secretAccessKey are required", i))
		}
	}
	for i, sec := range seed.Secrets {
		where := fmt.Sprintf("secrets[%d] (%s)", i, sec.Name)
		if sec.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		}
		if len(regionsOf(sec.Region, sec.Regions)) == 0 {
			errs = append(errs, fmt.Errorf("%s: region or regions is required", where))
		}
		single := sec.String != nil || sec.Binary != nil
		if single && len(sec.Versions) > 0 {
			errs = append(errs, fmt.Errorf("%s: give either string/binary or versions, not both", where))
		}
		versions := sec.versions()
		for j, v := range versions {
			if (v.String == nil) == (v.Binary == nil) {
				errs = append(errs, fmt.Errorf("%s: version %d needs exactly one of string or binary", where, j))
			}
			if v.Binary != nil {
				if _, err := base64.StdEncoding.DecodeString(*v.Binary); err != nil {
					errs = append(errs, fmt.Errorf("%s: version %d: binary is not base64: %v", where, j, err))
				}
			}
		}
	}
	for i, p := range seed.Parameters {
		where := fmt.Sprintf("parameters[%d] (%s)", i, p.Name)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		}
		if len(regionsOf(p.Region, p.Regions)) == 0 {
			errs = append(errs, fmt.Errorf("%s: region or regions is required", where))
		}
		if p.Type != "" && !validParamType(p.Type) {
			errs = append(errs, fmt.Errorf("%s: unknown type %q", where, p.Type))
		}
		n := len(p.values())
		if n == 0 || (p.Value != nil && len(p.Values) > 0) {
			errs = append(errs, fmt.Errorf("%s: give exactly one of value or values", where))
		}
		for l, v := range p.Labels {
			if v < 1 || v > int64(n) {
				errs = append(errs, fmt.Errorf("%s: label %s refers to missing version %d", where, l, v))
			}
			if !validLabel(l) {
				errs = append(errs, fmt.Errorf("%s: invalid label %q", where, l))
			}
		}
	}
	for i, r := range seed.Roles {
		if _, _, ok := parseRoleARN(r.ARN); !ok {
			errs = append(errs, fmt.Errorf("roles[%d]: invalid role ARN %q", i, r.ARN))
		}
		if r.MaxSessionDuration < 0 || r.CredentialLifetime < 0 {
			errs = append(errs, fmt.Errorf("roles[%d] (%s): durations must not be negative", i, r.ARN))
		}
	}
	for i, a := range seed.PodIdentityAssociations {
		if a.Namespace == "" || a.ServiceAccount == "" {
			errs = append(errs, fmt.Errorf("podIdentityAssociations[%d]: namespace and serviceAccount are required", i))
		}
		if _, _, ok := parseRoleARN(a.RoleARN); !ok {
			errs = append(errs, fmt.Errorf("podIdentityAssociations[%d]: invalid role ARN %q", i, a.RoleARN))
		}
	}
	for i, q := range seed.Queues {
		if len(regionsOf(q.Region, q.Regions)) == 0 {
			errs = append(errs, fmt.Errorf("queues[%d] (%s): region or regions is required", i, q.Name))
		}
		if err := (Queue{Name: q.Name, EventSources: q.EventSources, VisibilityTimeout: q.VisibilityTimeout}).validate(); err != nil {
			errs = append(errs, fmt.Errorf("queues[%d]: %w", i, err))
		}
	}
	if d := seed.EventDelivery; d != nil {
		if err := d.delivery().validate(); err != nil {
			errs = append(errs, fmt.Errorf("eventDelivery: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("fakeaws: invalid seed: %w", errors.Join(errs...))
	}
	return nil
}

func (sec *SeedSecret) versions() []SeedSecretVersion {
	if sec.String != nil || sec.Binary != nil {
		return []SeedSecretVersion{{String: sec.String, Binary: sec.Binary}}
	}
	return sec.Versions
}

func (p *SeedParameter) values() []string {
	if p.Value != nil {
		return []string{*p.Value}
	}
	return p.Values
}

// ApplySeed adds the seed's identities, roles, associations and data to the
// server. Secrets and parameters that already exist get the seeded values as
// new versions.
func (s *Server) ApplySeed(seed *Seed) error {
	if err := seed.validate(); err != nil {
		return err
	}
	for _, id := range seed.Identities {
		s.AddIdentity(Identity{
			AccessKeyID:     id.AccessKeyID,
			SecretAccessKey: id.SecretAccessKey,
			SessionToken:    id.SessionToken,
			ARN:             id.Name,
			Actions:         id.Actions,
			Resources:       id.Resources,
			Statements:      id.Statements,
		})
	}
	for _, r := range seed.Roles {
		if err := s.AddRole(r.role()); err != nil {
			return err
		}
	}
	for _, a := range seed.PodIdentityAssociations {
		s.AddPodIdentityAssociation(a.Namespace, a.ServiceAccount, a.RoleARN)
	}
	for _, sec := range seed.Secrets {
		for _, region := range regionsOf(sec.Region, sec.Regions) {
			if err := s.applySeedSecret(region, sec); err != nil {
				return err
			}
		}
	}
	for _, p := range seed.Parameters {
		for _, region := range regionsOf(p.Region, p.Regions) {
			s.applySeedParameter(region, p)
		}
	}
	for _, q := range seed.Queues {
		for _, region := range regionsOf(q.Region, q.Regions) {
			if err := s.AddQueue(region, Queue{Name: q.Name, EventSources: q.EventSources, VisibilityTimeout: q.VisibilityTimeout}); err != nil {
				return err
			}
		}
	}
	if d := seed.EventDelivery; d != nil {
		return s.SetDelivery(d.delivery())
	}
	return nil
}

func (d *SeedDelivery) delivery() Delivery {
	return Delivery{Seed: d.Seed, Delay: d.Delay, Jitter: d.Jitter, Loss: d.Loss, Duplicate: d.Duplicate, ReorderWindow: d.ReorderWindow}
}

func (s *Server) applySeedSecret(region string, sec SeedSecret) error {
	for _, v := range sec.versions() {
		var bin []byte
		if v.Binary != nil {
			bin, _ = base64.StdEncoding.DecodeString(*v.Binary) // validated
			if bin == nil {
				bin = []byte{}
			}
		}
		if _, _, err := s.putSecretVersion(region, sec.Name, v.String, bin, v.VersionID, v.Stages); err != nil {
			return err
		}
	}
	if len(sec.versions()) == 0 {
		// A secret with no value yet, as CreateSecret without a value makes.
		s.dataMu.Lock()
		rd := s.region(region)
		if _, ok := rd.secrets[sec.Name]; !ok {
			rd.secrets[sec.Name] = s.newSecret(region, sec.Name, s.now())
		}
		s.dataMu.Unlock()
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	stored := s.region(region).secrets[sec.Name]
	if sec.Description != "" {
		stored.description = sec.Description
	}
	keys := make([]string, 0, len(sec.Tags))
	for k := range sec.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		stored.setTag(k, sec.Tags[k])
	}
	return nil
}

func (s *Server) applySeedParameter(region string, p SeedParameter) {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	var first int64
	for i, v := range p.values() {
		n := s.putParamLocked(region, p.Name, v, p.Type)
		if i == 0 {
			first = n
		}
	}
	param := s.regionRead(region).params[p.Name]
	labels := make([]string, 0, len(p.Labels))
	for l := range p.Labels {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		// Label versions count from the first value of this seed entry.
		v := param.versions[first-1+p.Labels[l]-1]
		_, _ = param.label(v, []string{l})
	}
}
