package fakeaws

import (
	"crypto/rand"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Well-known staging labels.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"
)

// secret is one Secrets Manager secret. Guarded by Server.dataMu.
type secret struct {
	name        string
	arn         string
	description string
	tags        []tag // in insertion order, as DescribeSecret returns them
	created     time.Time
	changed     time.Time
	deleted     time.Time // non-zero once scheduled for deletion
	purgeAt     time.Time // the end of the recovery window (DeletionDate)
	versions    map[string]*secretVersion
	order       []string // version ids, oldest first
}

type tag struct{ Key, Value string }

type secretVersion struct {
	id      string
	str     *string
	bin     []byte
	stages  []string
	created time.Time
}

func (v *secretVersion) hasStage(stage string) bool { return slices.Contains(v.stages, stage) }

func (v *secretVersion) removeStage(stage string) {
	v.stages = slices.DeleteFunc(v.stages, func(s string) bool { return s == stage })
}

// partialARN is the ARN without the random six-character suffix, which
// Secrets Manager also accepts as a SecretId.
func (sec *secret) partialARN() string {
	return sec.arn[:len(sec.arn)-len("-XXXXXX")]
}

func (sec *secret) stageOwner(stage string) *secretVersion {
	for _, id := range sec.order {
		if v := sec.versions[id]; v.hasStage(stage) {
			return v
		}
	}
	return nil
}

// attachStage moves a staging label to v. As in Secrets Manager, moving
// AWSCURRENT automatically gives AWSPREVIOUS to the version that had it.
func (sec *secret) attachStage(stage string, v *secretVersion) {
	old := sec.stageOwner(stage)
	if old == v {
		return
	}
	if old != nil {
		old.removeStage(stage)
	}
	v.stages = append(v.stages, stage)
	if stage == StageCurrent && old != nil {
		sec.attachStage(StagePrevious, old)
	}
}

// addVersion stores a new version and attaches stages to it (AWSCURRENT if
// none are given), as PutSecretValue does.
func (sec *secret) addVersion(id string, str *string, bin []byte, stages []string, now time.Time) *secretVersion {
	v := &secretVersion{id: id, str: str, bin: slices.Clone(bin), created: now}
	sec.versions[id] = v
	sec.order = append(sec.order, id)
	if len(stages) == 0 {
		stages = []string{StageCurrent}
	}
	for _, st := range stages {
		sec.attachStage(st, v)
	}
	sec.changed = now
	return v
}

// selectVersion resolves GetSecretValue's VersionId / VersionStage.
func (sec *secret) selectVersion(versionID, stage string) (*secretVersion, *apiError) {
	if versionID != "" {
		v, ok := sec.versions[versionID]
		if !ok {
			return nil, clientErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", versionID)
		}
		if stage != "" && !v.hasStage(stage) {
			return nil, clientErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
		}
		return v, nil
	}
	if stage == "" {
		stage = StageCurrent
	}
	v := sec.stageOwner(stage)
	if v == nil {
		return nil, clientErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: %s", stage)
	}
	return v, nil
}

// versionsToStages is DescribeSecret's map; versions without labels
// ("deprecated") are omitted, as AWS does.
func (sec *secret) versionsToStages() map[string][]string {
	m := map[string][]string{}
	for _, id := range sec.order {
		if v := sec.versions[id]; len(v.stages) > 0 {
			m[id] = slices.Clone(v.stages)
		}
	}
	return m
}

// findSecret resolves a SecretId: a name, a full ARN or a partial ARN.
func (rd *regionData) findSecret(id string) *secret {
	if sec, ok := rd.secrets[id]; ok {
		return sec
	}
	if strings.HasPrefix(id, "arn:") {
		for _, sec := range rd.secrets {
			if sec.arn == id || sec.partialARN() == id {
				return sec
			}
		}
	}
	return nil
}

// sortedSecrets returns the region's secrets ordered by name, the order in
// which list-style operations page through them.
func (rd *regionData) sortedSecrets() []*secret {
	out := make([]*secret, 0, len(rd.secrets))
	for _, sec := range rd.secrets {
		out = append(out, sec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// secretARN builds a new ARN. The random suffix is what makes a secret
// re-created under the same name distinguishable from the old one.
func (s *Server) secretARN(region, name string) string {
	return s.secretResourceARN(region, name) + "-" + randomAlnum(6)
}

// secretResourceARN is the suffix-less ARN used to authorise requests for
// secrets that do not exist (IAM evaluates the ARN the caller asked for).
func (s *Server) secretResourceARN(region, name string) string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s", region, s.account, name)
}

func (s *Server) newSecret(region, name string, now time.Time) *secret {
	return &secret{
		name:     name,
		arn:      s.secretARN(region, name),
		created:  now,
		changed:  now,
		versions: map[string]*secretVersion{},
	}
}

// putSecretVersion creates the secret if needed and adds a version. Used by
// the seeding API; the wire operations have their own validation.
func (s *Server) putSecretVersion(region, name string, str *string, bin []byte, versionID string, stages []string) (arn, vid string, err error) {
	if versionID == "" {
		versionID = newUUID()
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	now := s.now()
	rd := s.region(region)
	sec, ok := rd.secrets[name]
	if !ok {
		sec = s.newSecret(region, name, now)
		rd.secrets[name] = sec
	}
	if _, dup := sec.versions[versionID]; dup {
		return "", "", fmt.Errorf("fakeaws: secret %s already has version %s", name, versionID)
	}
	sec.addVersion(versionID, str, bin, stages, now)
	return sec.arn, versionID, nil
}

// PutSecretString stores a string secret in region. If the secret exists,
// the value becomes a new AWSCURRENT version (the old one AWSPREVIOUS), as
// with PutSecretValue, and is announced as PutSecretValue (CreateSecret for
// a new secret).
func (s *Server) PutSecretString(region, name, value string) (arn, versionID string) {
	return s.putSecretAnnounced(region, name, &value, nil)
}

// PutSecretBinary is PutSecretString for a SecretBinary value.
func (s *Server) PutSecretBinary(region, name string, value []byte) (arn, versionID string) {
	if value == nil {
		value = []byte{}
	}
	return s.putSecretAnnounced(region, name, nil, value)
}

func (s *Server) putSecretAnnounced(region, name string, str *string, bin []byte) (arn, versionID string) {
	s.dataMu.RLock()
	_, exists := s.regionRead(region).secrets[name]
	s.dataMu.RUnlock()
	arn, versionID, _ = s.putSecretVersion(region, name, str, bin, "", nil)
	if exists {
		s.publish(s.smEvent(region, "PutSecretValue", s.controlCaller(), arn, map[string]any{"secretId": name, "clientRequestToken": versionID}))
	} else {
		s.publish(s.smEvent(region, "CreateSecret", s.controlCaller(), arn, map[string]any{"name": name, "clientRequestToken": versionID}))
	}
	return arn, versionID
}

// SetSecretStage moves a staging label to a version (AWSCURRENT moves the
// old current version to AWSPREVIOUS).
func (s *Server) SetSecretStage(region, name, versionID, stage string) error {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, ok := s.regionRead(region).secrets[name]
	if !ok {
		return fmt.Errorf("fakeaws: no secret %s in %s", name, region)
	}
	v, ok := sec.versions[versionID]
	if !ok {
		return fmt.Errorf("fakeaws: secret %s has no version %s", name, versionID)
	}
	sec.attachStage(stage, v)
	sec.changed = s.now()
	ev := s.smEvent(region, "UpdateSecretVersionStage", s.controlCaller(), sec.arn,
		map[string]any{"secretId": name, "versionStage": stage, "moveToVersionId": versionID})
	defer s.publish(ev) // under dataMu: sqsMu is only ever taken after it
	return nil
}

// TagSecret sets tags on a secret (used by BatchGetSecretValue and
// ListSecrets filters).
func (s *Server) TagSecret(region, name string, tags map[string]string) error {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, ok := s.regionRead(region).secrets[name]
	if !ok {
		return fmt.Errorf("fakeaws: no secret %s in %s", name, region)
	}
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sec.setTag(k, tags[k])
	}
	return nil
}

func (sec *secret) setTag(k, v string) {
	for i := range sec.tags {
		if sec.tags[i].Key == k {
			sec.tags[i].Value = v
			return
		}
	}
	sec.tags = append(sec.tags, tag{k, v})
}

// DeleteSecret removes a secret immediately (like ForceDeleteWithoutRecovery,
// and announced as such) and reports whether it existed.
func (s *Server) DeleteSecret(region, name string) bool {
	s.dataMu.Lock()
	rd := s.regionRead(region)
	sec, ok := rd.secrets[name]
	if !ok {
		s.dataMu.Unlock()
		return false
	}
	delete(rd.secrets, name)
	s.dataMu.Unlock()
	s.publish(s.smEvent(region, "DeleteSecret", s.controlCaller(), sec.arn, map[string]any{"secretId": name, "forceDeleteWithoutRecovery": true}))
	return true
}

// EndRecoveryWindow makes a secret scheduled for deletion reach the end of
// its recovery window now (the fake's clock cannot skip days: SigV4 checks
// it): the next Secrets Manager call finds it deleted. It reports whether
// the secret was scheduled for deletion.
func (s *Server) EndRecoveryWindow(region, name string) bool {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, ok := s.regionRead(region).secrets[name]
	if !ok || sec.deleted.IsZero() {
		return false
	}
	sec.purgeAt = s.now()
	return true
}

// SecretVersionStages returns versionID → staging labels for a secret, for
// assertions; ok is false if the secret does not exist.
func (s *Server) SecretVersionStages(region, name string) (stages map[string][]string, ok bool) {
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	sec, ok := s.regionRead(region).secrets[name]
	if !ok {
		return nil, false
	}
	return sec.versionsToStages(), true
}

// newUUID returns a random (version 4) UUID, the format of Secrets Manager
// version ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomAlnum(n int) string {
	return randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", n)
}

// randomFrom returns n random characters of alphabet (with a slight modulo
// bias, irrelevant for fake identifiers).
func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
