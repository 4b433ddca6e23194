package fakeaws

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Secrets Manager operations. Input and output structs mirror the modeled
// shapes; only the members the fake understands are declared (unknown input
// members are ignored, as older servers ignore newer client fields).

const smActionPrefix = "secretsmanager:"

func (s *Server) smDispatch(rc *reqCtx) (any, *apiError) {
	s.purgeDeletedSecrets(rc.call.Region)
	switch rc.call.Operation {
	case "GetSecretValue":
		return s.smGetSecretValue(rc)
	case "BatchGetSecretValue":
		return s.smBatchGetSecretValue(rc)
	case "DescribeSecret":
		return s.smDescribeSecret(rc)
	case "ListSecrets":
		return s.smListSecrets(rc)
	case "ListSecretVersionIds":
		return s.smListSecretVersionIds(rc)
	case "CreateSecret":
		return s.smCreateSecret(rc)
	case "PutSecretValue":
		return s.smPutSecretValue(rc)
	case "UpdateSecretVersionStage":
		return s.smUpdateSecretVersionStage(rc)
	case "DeleteSecret":
		return s.smDeleteSecret(rc)
	case "RestoreSecret":
		return s.smRestoreSecret(rc)
	case "UpdateSecret":
		return s.smUpdateSecret(rc)
	case "PutResourcePolicy":
		return s.smPutResourcePolicy(rc)
	}
	return nil, unknownOperation(rc.call.Operation)
}

type smSecretValue struct {
	ARN           string     `json:"ARN"`
	Name          string     `json:"Name"`
	VersionId     string     `json:"VersionId"`
	SecretString  *string    `json:"SecretString,omitempty"`
	SecretBinary  []byte     `json:"SecretBinary,omitempty"` // base64 in JSON
	VersionStages []string   `json:"VersionStages"`
	CreatedDate   *epochTime `json:"CreatedDate,omitempty"`
}

func secretValueOf(sec *secret, v *secretVersion) smSecretValue {
	return smSecretValue{
		ARN:           sec.arn,
		Name:          sec.name,
		VersionId:     v.id,
		SecretString:  v.str,
		SecretBinary:  v.bin,
		VersionStages: slices.Clone(v.stages),
		CreatedDate:   epochPtr(v.created),
	}
}

var errSecretNotFound = clientErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")

// smLookup resolves a SecretId and authorises action on it. Authorisation
// comes first so that a caller without permission cannot probe for the
// existence of secrets: it gets AccessDenied either way, as in AWS.
// Callers hold dataMu.
func (s *Server) smLookup(rc *reqCtx, action, id string) (*secret, *apiError) {
	if id == "" {
		return nil, validationErr("Value null at 'secretId' failed to satisfy constraint: Member must not be null")
	}
	sec := s.regionRead(rc.call.Region).findSecret(id)
	resource := id
	switch {
	case sec != nil:
		resource = sec.arn
	case !strings.HasPrefix(id, "arn:"):
		resource = s.secretResourceARN(rc.call.Region, id)
	}
	if e := rc.authorize(smActionPrefix+action, resource); e != nil {
		return nil, e
	}
	if sec == nil {
		return nil, errSecretNotFound
	}
	return sec, nil
}

var errMarkedForDeletion = clientErr("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")

// --- GetSecretValue ---------------------------------------------------------

type smGetSecretValueInput struct {
	SecretId     string
	VersionId    string
	VersionStage string
}

func (s *Server) smGetSecretValue(rc *reqCtx) (any, *apiError) {
	var in smGetSecretValueInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	sec, e := s.smLookup(rc, "GetSecretValue", in.SecretId)
	if e != nil {
		return nil, e
	}
	if !sec.deleted.IsZero() {
		return nil, errMarkedForDeletion
	}
	v, e := sec.selectVersion(in.VersionId, in.VersionStage)
	if e != nil {
		return nil, e
	}
	return secretValueOf(sec, v), nil
}

// --- BatchGetSecretValue ----------------------------------------------------

type smFilter struct {
	Key    string
	Values []string
}

type smBatchGetSecretValueInput struct {
	SecretIdList []string
	Filters      []smFilter
	MaxResults   *int
	NextToken    *string
}

type smAPIError struct {
	SecretId  string `json:"SecretId"`
	ErrorCode string `json:"ErrorCode"`
	Message   string `json:"Message"`
}

type smBatchGetSecretValueOutput struct {
	SecretValues []smSecretValue `json:"SecretValues"`
	Errors       []smAPIError    `json:"Errors,omitempty"`
	NextToken    *string         `json:"NextToken,omitempty"`
}

const (
	maxBatchSecretIDs = 20
	maxBatchResults   = 20
)

func (s *Server) smBatchGetSecretValue(rc *reqCtx) (any, *apiError) {
	var in smBatchGetSecretValueInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	// BatchGetSecretValue has no resource-level permissions: the call itself
	// is authorised against "*", then each secret needs GetSecretValue.
	if e := rc.authorize(smActionPrefix+"BatchGetSecretValue", "*"); e != nil {
		return nil, e
	}
	hasIDs, hasFilters := len(in.SecretIdList) > 0, len(in.Filters) > 0
	switch {
	case hasIDs == hasFilters:
		return nil, clientErr("InvalidParameterException", "Either SecretIdList or Filters must be specified, but not both.")
	case hasIDs && len(in.SecretIdList) > maxBatchSecretIDs:
		return nil, validationErr("Value '%v' at 'secretIdList' failed to satisfy constraint: Member must have length less than or equal to %d", in.SecretIdList, maxBatchSecretIDs)
	case hasIDs && (in.MaxResults != nil || in.NextToken != nil):
		return nil, clientErr("InvalidParameterException", "MaxResults and NextToken can only be used with Filters.")
	}

	out := smBatchGetSecretValueOutput{SecretValues: []smSecretValue{}}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()

	if hasIDs {
		rc.call.Resources = slices.Clone(in.SecretIdList)
		for _, id := range in.SecretIdList {
			val, e := s.smBatchOne(rc, id)
			if e != nil {
				out.Errors = append(out.Errors, smAPIError{SecretId: id, ErrorCode: e.Code, Message: e.Message})
				continue
			}
			out.SecretValues = append(out.SecretValues, val)
		}
		return out, nil
	}

	rc.call.Resources = filterStrings(in.Filters)
	// Filtering lists secrets, which needs its own permission.
	if e := rc.authorize(smActionPrefix+"ListSecrets", "*"); e != nil {
		return nil, e
	}
	page, next, e := s.smFilterPage(rc.call.Region, in.Filters, in.MaxResults, in.NextToken, maxBatchResults, false)
	if e != nil {
		return nil, e
	}
	for _, sec := range page {
		val, e := s.smBatchOne(rc, sec.arn)
		if e != nil {
			out.Errors = append(out.Errors, smAPIError{SecretId: sec.name, ErrorCode: e.Code, Message: e.Message})
			continue
		}
		out.SecretValues = append(out.SecretValues, val)
	}
	out.NextToken = next
	return out, nil
}

// smBatchOne fetches AWSCURRENT of one secret for BatchGetSecretValue.
// Callers hold dataMu.
func (s *Server) smBatchOne(rc *reqCtx, id string) (smSecretValue, *apiError) {
	sec, e := s.smLookup(rc, "GetSecretValue", id)
	if e != nil {
		return smSecretValue{}, e
	}
	if !sec.deleted.IsZero() {
		return smSecretValue{}, errMarkedForDeletion
	}
	v, e := sec.selectVersion("", StageCurrent)
	if e != nil {
		return smSecretValue{}, e
	}
	return secretValueOf(sec, v), nil
}

// smFilterPage selects one page of a region's secrets matching filters,
// ordered by name. Callers hold dataMu.
func (s *Server) smFilterPage(region string, filters []smFilter, maxResults *int, nextToken *string, limit int, includeDeleted bool) ([]*secret, *string, *apiError) {
	for _, f := range filters {
		if !validFilterKeys[f.Key] {
			return nil, nil, validationErr("Value '%s' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, tag-value, primary-region, owning-service]", f.Key)
		}
	}
	n := limit
	if maxResults != nil {
		if *maxResults < 1 || *maxResults > limit {
			return nil, nil, validationErr("Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and %d", *maxResults, limit)
		}
		n = *maxResults
	}
	after := ""
	if nextToken != nil {
		var ok bool
		if after, ok = decodeToken(*nextToken); !ok {
			return nil, nil, clientErr("InvalidNextTokenException", "The NextToken value is invalid.")
		}
	}
	var page []*secret
	for _, sec := range s.regionRead(region).sortedSecrets() {
		if sec.name <= after && nextToken != nil {
			continue
		}
		if (!includeDeleted && !sec.deleted.IsZero()) || !sec.matchesFilters(filters) {
			continue
		}
		if len(page) == n {
			tok := encodeToken(page[n-1].name)
			return page, &tok, nil
		}
		page = append(page, sec)
	}
	return page, nil, nil
}

var validFilterKeys = map[string]bool{
	"all": true, "name": true, "description": true, "tag-key": true, "tag-value": true,
	"primary-region": true, "owning-service": true,
}

// matchesFilters applies ListSecrets filter semantics: filters are ANDed,
// values within a filter ORed; each value is a case-sensitive prefix, and a
// leading '!' negates it.
func (sec *secret) matchesFilters(filters []smFilter) bool {
	for _, f := range filters {
		if !slices.ContainsFunc(f.Values, func(v string) bool { return sec.matchesFilterValue(f.Key, v) }) {
			return false
		}
	}
	return true
}

func (sec *secret) matchesFilterValue(key, value string) bool {
	neg := strings.HasPrefix(value, "!")
	value = strings.TrimPrefix(value, "!")
	var fields []string
	switch key {
	case "name":
		fields = []string{sec.name}
	case "description":
		fields = []string{sec.description}
	case "tag-key", "tag-value", "all":
		if key == "all" {
			fields = append(fields, sec.name, sec.description)
		}
		for _, t := range sec.tags {
			if key != "tag-value" {
				fields = append(fields, t.Key)
			}
			if key != "tag-key" {
				fields = append(fields, t.Value)
			}
		}
	}
	hit := slices.ContainsFunc(fields, func(f string) bool { return strings.HasPrefix(f, value) })
	return hit != neg
}

func filterStrings(filters []smFilter) []string {
	var out []string
	for _, f := range filters {
		out = append(out, f.Key+"="+strings.Join(f.Values, ","))
	}
	return out
}

// --- DescribeSecret / ListSecrets -------------------------------------------

type smTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type smDescribeSecretInput struct{ SecretId string }

type smSecretMetadata struct {
	ARN                string              `json:"ARN"`
	Name               string              `json:"Name"`
	Description        string              `json:"Description,omitempty"`
	Tags               []smTag             `json:"Tags,omitempty"`
	VersionIdsToStages map[string][]string `json:"VersionIdsToStages,omitempty"`
	CreatedDate        *epochTime          `json:"CreatedDate,omitempty"`
	LastChangedDate    *epochTime          `json:"LastChangedDate,omitempty"`
	DeletedDate        *epochTime          `json:"DeletedDate,omitempty"`
}

func metadataOf(sec *secret) smSecretMetadata {
	m := smSecretMetadata{
		ARN:                sec.arn,
		Name:               sec.name,
		Description:        sec.description,
		VersionIdsToStages: sec.versionsToStages(),
		CreatedDate:        epochPtr(sec.created),
		LastChangedDate:    epochPtr(sec.changed),
		DeletedDate:        epochPtr(sec.deleted),
	}
	for _, t := range sec.tags {
		m.Tags = append(m.Tags, smTag(t))
	}
	return m
}

func (s *Server) smDescribeSecret(rc *reqCtx) (any, *apiError) {
	var in smDescribeSecretInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	sec, e := s.smLookup(rc, "DescribeSecret", in.SecretId)
	if e != nil {
		return nil, e
	}
	return metadataOf(sec), nil
}

type smListSecretsInput struct {
	Filters                []smFilter
	MaxResults             *int
	NextToken              *string
	IncludePlannedDeletion bool
}

// ListSecrets returns VersionIdsToStages under a different member name.
type smListEntry struct {
	smSecretMetadata
	VersionIdsToStages     map[string][]string `json:"VersionIdsToStages,omitempty"` // shadows the embedded field
	SecretVersionsToStages map[string][]string `json:"SecretVersionsToStages,omitempty"`
}

func (s *Server) smListSecrets(rc *reqCtx) (any, *apiError) {
	var in smListSecretsInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = filterStrings(in.Filters)
	if e := rc.authorize(smActionPrefix+"ListSecrets", "*"); e != nil {
		return nil, e
	}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	page, next, e := s.smFilterPage(rc.call.Region, in.Filters, in.MaxResults, in.NextToken, 100, in.IncludePlannedDeletion)
	if e != nil {
		return nil, e
	}
	list := []smListEntry{}
	for _, sec := range page {
		m := metadataOf(sec)
		list = append(list, smListEntry{smSecretMetadata: m, SecretVersionsToStages: m.VersionIdsToStages})
	}
	return struct {
		SecretList []smListEntry `json:"SecretList"`
		NextToken  *string       `json:"NextToken,omitempty"`
	}{list, next}, nil
}

// --- ListSecretVersionIds ---------------------------------------------------

type smListSecretVersionIdsInput struct {
	SecretId          string
	MaxResults        *int
	NextToken         *string
	IncludeDeprecated bool
}

type smVersionEntry struct {
	VersionId     string     `json:"VersionId"`
	VersionStages []string   `json:"VersionStages,omitempty"`
	CreatedDate   *epochTime `json:"CreatedDate,omitempty"`
}

func (s *Server) smListSecretVersionIds(rc *reqCtx) (any, *apiError) {
	var in smListSecretVersionIdsInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	limit := 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 100 {
			return nil, validationErr("Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100", *in.MaxResults)
		}
		limit = *in.MaxResults
	}
	start := 0
	if in.NextToken != nil {
		tok, ok := decodeToken(*in.NextToken)
		n, err := strconv.Atoi(tok)
		if !ok || err != nil || n < 0 {
			return nil, clientErr("InvalidNextTokenException", "The NextToken value is invalid.")
		}
		start = n
	}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	sec, e := s.smLookup(rc, "ListSecretVersionIds", in.SecretId)
	if e != nil {
		return nil, e
	}
	// Newest first, skipping versions without labels unless asked for.
	var all []smVersionEntry
	for i := len(sec.order) - 1; i >= 0; i-- {
		v := sec.versions[sec.order[i]]
		if len(v.stages) == 0 && !in.IncludeDeprecated {
			continue
		}
		all = append(all, smVersionEntry{VersionId: v.id, VersionStages: slices.Clone(v.stages), CreatedDate: epochPtr(v.created)})
	}
	out := struct {
		ARN       string           `json:"ARN"`
		Name      string           `json:"Name"`
		Versions  []smVersionEntry `json:"Versions"`
		NextToken *string          `json:"NextToken,omitempty"`
	}{ARN: sec.arn, Name: sec.name, Versions: []smVersionEntry{}}
	if start < len(all) {
		end := min(start+limit, len(all))
		out.Versions = all[start:end]
		if end < len(all) {
			tok := encodeToken(strconv.Itoa(end))
			out.NextToken = &tok
		}
	}
	return out, nil
}

// --- CreateSecret / PutSecretValue ------------------------------------------

type smCreateSecretInput struct {
	Name               string
	Description        string
	ClientRequestToken string
	SecretString       *string
	SecretBinary       []byte
	Tags               []smTag
}

// secretNameRE is Secrets Manager's allowed name alphabet.
var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9/_+=.@!-]{1,512}$`)

func (s *Server) smCreateSecret(rc *reqCtx) (any, *apiError) {
	var in smCreateSecretInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.Name}
	if e := rc.authorize(smActionPrefix+"CreateSecret", s.secretResourceARN(rc.call.Region, in.Name)); e != nil {
		return nil, e
	}
	if !secretNameRE.MatchString(in.Name) {
		return nil, clientErr("ValidationException", "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	if in.SecretString != nil && in.SecretBinary != nil {
		return nil, clientErr("InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	rd := s.region(rc.call.Region)
	if old, ok := rd.secrets[in.Name]; ok {
		if !old.deleted.IsZero() {
			return nil, clientErr("InvalidRequestException", "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		return nil, clientErr("ResourceExistsException", "The operation failed because the secret %s already exists.", in.Name)
	}
	now := s.now()
	sec := s.newSecret(rc.call.Region, in.Name, now)
	sec.description = in.Description
	for _, t := range in.Tags {
		sec.setTag(t.Key, t.Value)
	}
	out := struct {
		ARN       string `json:"ARN"`
		Name      string `json:"Name"`
		VersionId string `json:"VersionId,omitempty"`
	}{ARN: sec.arn, Name: sec.name}
	if in.SecretString != nil || in.SecretBinary != nil {
		id := in.ClientRequestToken
		if id == "" {
			id = newUUID()
		}
		sec.addVersion(id, in.SecretString, in.SecretBinary, nil, now)
		out.VersionId = id
	}
	rd.secrets[in.Name] = sec
	req := map[string]any{"name": in.Name}
	if in.Description != "" {
		req["description"] = in.Description
	}
	if out.VersionId != "" {
		req["clientRequestToken"] = out.VersionId
	}
	rc.emit(s.smEvent(rc.call.Region, "CreateSecret", s.callerOf(rc), sec.arn, req))
	return out, nil
}

type smPutSecretValueInput struct {
	SecretId           string
	ClientRequestToken string
	SecretString       *string
	SecretBinary       []byte
	VersionStages      []string
}

func (s *Server) smPutSecretValue(rc *reqCtx) (any, *apiError) {
	var in smPutSecretValueInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	if (in.SecretString == nil) == (in.SecretBinary == nil) {
		return nil, clientErr("InvalidParameterException", "You must provide either SecretString or SecretBinary, but not both.")
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, e := s.smLookup(rc, "PutSecretValue", in.SecretId)
	if e != nil {
		return nil, e
	}
	if !sec.deleted.IsZero() {
		return nil, errMarkedForDeletion
	}
	id := in.ClientRequestToken // the SDK always fills it in (idempotency token)
	if id == "" {
		id = newUUID()
	}
	v, exists := sec.versions[id]
	if exists {
		// Idempotent retry of the same request succeeds; reusing a version
		// id for different content does not.
		if !slices.Equal(v.bin, in.SecretBinary) || (v.str == nil) != (in.SecretString == nil) ||
			(v.str != nil && *v.str != *in.SecretString) {
			return nil, clientErr("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
	} else {
		v = sec.addVersion(id, in.SecretString, in.SecretBinary, in.VersionStages, s.now())
	}
	req := map[string]any{"secretId": in.SecretId, "clientRequestToken": id}
	if len(in.VersionStages) > 0 {
		req["versionStages"] = slices.Clone(in.VersionStages)
	}
	rc.emit(s.smEvent(rc.call.Region, "PutSecretValue", s.callerOf(rc), sec.arn, req))
	return struct {
		ARN           string   `json:"ARN"`
		Name          string   `json:"Name"`
		VersionId     string   `json:"VersionId"`
		VersionStages []string `json:"VersionStages"`
	}{sec.arn, sec.name, v.id, slices.Clone(v.stages)}, nil
}

// --- UpdateSecretVersionStage -----------------------------------------------

type smUpdateSecretVersionStageInput struct {
	SecretId            string
	VersionStage        string
	MoveToVersionId     string
	RemoveFromVersionId string
}

func (s *Server) smUpdateSecretVersionStage(rc *reqCtx) (any, *apiError) {
	var in smUpdateSecretVersionStageInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, e := s.smLookup(rc, "UpdateSecretVersionStage", in.SecretId)
	if e != nil {
		return nil, e
	}
	owner := sec.stageOwner(in.VersionStage)
	if in.RemoveFromVersionId != "" && (owner == nil || owner.id != in.RemoveFromVersionId) {
		return nil, clientErr("InvalidParameterException", "The staging label %s is not attached to version %s.", in.VersionStage, in.RemoveFromVersionId)
	}
	switch {
	case in.MoveToVersionId != "":
		target, ok := sec.versions[in.MoveToVersionId]
		if !ok {
			return nil, clientErr("ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: %s", in.MoveToVersionId)
		}
		if owner != nil && owner != target && in.RemoveFromVersionId == "" {
			return nil, clientErr("InvalidParameterException",
				"The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.",
				in.VersionStage, owner.id)
		}
		sec.attachStage(in.VersionStage, target)
	case in.RemoveFromVersionId != "":
		if in.VersionStage == StageCurrent {
			return nil, clientErr("InvalidParameterException", "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.")
		}
		owner.removeStage(in.VersionStage)
	default:
		return nil, clientErr("InvalidParameterException", "You must specify MoveToVersionId or RemoveFromVersionId.")
	}
	sec.changed = s.now()
	req := map[string]any{"secretId": in.SecretId, "versionStage": in.VersionStage}
	if in.MoveToVersionId != "" {
		req["moveToVersionId"] = in.MoveToVersionId
	}
	if in.RemoveFromVersionId != "" {
		req["removeFromVersionId"] = in.RemoveFromVersionId
	}
	rc.emit(s.smEvent(rc.call.Region, "UpdateSecretVersionStage", s.callerOf(rc), sec.arn, req))
	return struct {
		ARN  string `json:"ARN"`
		Name string `json:"Name"`
	}{sec.arn, sec.name}, nil
}

// --- DeleteSecret -----------------------------------------------------------

type smDeleteSecretInput struct {
	SecretId                   string
	RecoveryWindowInDays       *int
	ForceDeleteWithoutRecovery bool
}

func (s *Server) smDeleteSecret(rc *reqCtx) (any, *apiError) {
	var in smDeleteSecretInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	if in.ForceDeleteWithoutRecovery && in.RecoveryWindowInDays != nil {
		return nil, clientErr("InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	window := 30
	if in.RecoveryWindowInDays != nil {
		window = *in.RecoveryWindowInDays
		if window < 7 || window > 30 {
			return nil, clientErr("InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
		}
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, e := s.smLookup(rc, "DeleteSecret", in.SecretId)
	if e != nil {
		return nil, e
	}
	now := s.now()
	deletion := now
	if in.ForceDeleteWithoutRecovery {
		delete(s.region(rc.call.Region).secrets, sec.name)
	} else {
		if sec.deleted.IsZero() {
			// A second DeleteSecret keeps the first schedule.
			sec.deleted = now
			sec.purgeAt = now.Add(time.Duration(window) * 24 * time.Hour)
		}
		deletion = sec.purgeAt
	}
	req := map[string]any{"secretId": in.SecretId}
	if in.ForceDeleteWithoutRecovery {
		req["forceDeleteWithoutRecovery"] = true
	} else {
		req["recoveryWindowInDays"] = window
	}
	rc.emit(s.smEvent(rc.call.Region, "DeleteSecret", s.callerOf(rc), sec.arn, req))
	return struct {
		ARN          string     `json:"ARN"`
		Name         string     `json:"Name"`
		DeletionDate *epochTime `json:"DeletionDate"`
	}{sec.arn, sec.name, epochPtr(deletion)}, nil
}

// --- RestoreSecret ----------------------------------------------------------

// smRestoreSecret cancels a scheduled deletion; the secret's versions and
// values are back as they were. A secret not scheduled for deletion is
// left as it is.
func (s *Server) smRestoreSecret(rc *reqCtx) (any, *apiError) {
	var in struct{ SecretId string }
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, e := s.smLookup(rc, "RestoreSecret", in.SecretId)
	if e != nil {
		return nil, e
	}
	sec.deleted, sec.purgeAt = time.Time{}, time.Time{}
	rc.emit(s.smEvent(rc.call.Region, "RestoreSecret", s.callerOf(rc), sec.arn, map[string]any{"secretId": in.SecretId}))
	return struct {
		ARN  string `json:"ARN"`
		Name string `json:"Name"`
	}{sec.arn, sec.name}, nil
}

// --- UpdateSecret -----------------------------------------------------------

type smUpdateSecretInput struct {
	SecretId           string
	ClientRequestToken string
	Description        *string
	SecretString       *string
	SecretBinary       []byte
}

// smUpdateSecret changes a secret's description and, given a value, adds
// it as a new AWSCURRENT version, as PutSecretValue would.
func (s *Server) smUpdateSecret(rc *reqCtx) (any, *apiError) {
	var in smUpdateSecretInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	if in.SecretString != nil && in.SecretBinary != nil {
		return nil, clientErr("InvalidParameterException", "You can't specify both a binary secret value and a string secret value in the same secret.")
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, e := s.smLookup(rc, "UpdateSecret", in.SecretId)
	if e != nil {
		return nil, e
	}
	if !sec.deleted.IsZero() {
		return nil, errMarkedForDeletion
	}
	req := map[string]any{"secretId": in.SecretId}
	if in.Description != nil {
		sec.description = *in.Description
		req["description"] = *in.Description
	}
	out := struct {
		ARN       string `json:"ARN"`
		Name      string `json:"Name"`
		VersionId string `json:"VersionId,omitempty"`
	}{ARN: sec.arn, Name: sec.name}
	if in.SecretString != nil || in.SecretBinary != nil {
		id := in.ClientRequestToken
		if id == "" {
			id = newUUID()
		}
		if _, exists := sec.versions[id]; exists {
			return nil, clientErr("ResourceExistsException", "You can't modify an existing version, you can only create a new version.")
		}
		sec.addVersion(id, in.SecretString, in.SecretBinary, nil, s.now())
		out.VersionId = id
		req["clientRequestToken"] = id
	}
	sec.changed = s.now()
	rc.emit(s.smEvent(rc.call.Region, "UpdateSecret", s.callerOf(rc), sec.arn, req))
	return out, nil
}

// --- PutResourcePolicy ------------------------------------------------------

// smPutResourcePolicy accepts and announces a secret's resource policy.
// The fake's permission model has no resource policies: it changes no
// answer, but a consumer of events sees the change as AWS would send it.
func (s *Server) smPutResourcePolicy(rc *reqCtx) (any, *apiError) {
	var in struct{ SecretId, ResourcePolicy string }
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.SecretId}
	if in.ResourcePolicy == "" {
		return nil, validationErr("Value null at 'resourcePolicy' failed to satisfy constraint: Member must not be null")
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	sec, e := s.smLookup(rc, "PutResourcePolicy", in.SecretId)
	if e != nil {
		return nil, e
	}
	rc.emit(s.smEvent(rc.call.Region, "PutResourcePolicy", s.callerOf(rc), sec.arn, map[string]any{"secretId": in.SecretId}))
	return struct {
		ARN  string `json:"ARN"`
		Name string `json:"Name"`
	}{sec.arn, sec.name}, nil
}

// purgeDeletedSecrets removes the secrets of region whose recovery window
// has passed, as Secrets Manager's background deletion does: from then on
// they do not exist (ResourceNotFoundException), and the name is free.
func (s *Server) purgeDeletedSecrets(region string) {
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	rd := s.regionRead(region)
	now := s.now()
	for name, sec := range rd.secrets {
		if !sec.deleted.IsZero() && !now.Before(sec.purgeAt) {
			delete(rd.secrets, name)
		}
	}
}
