package fakeaws

import (
	"slices"
	"strconv"
	"strings"
)

// SSM Parameter Store operations.

const (
	ssmActionPrefix         = "ssm:"
	maxGetParametersNames   = 10
	maxParametersByPathPage = 10
)

func (s *Server) ssmDispatch(rc *reqCtx) (any, *apiError) {
	switch rc.call.Operation {
	case "GetParameter":
		return s.ssmGetParameter(rc)
	case "GetParameters":
		return s.ssmGetParameters(rc)
	case "GetParametersByPath":
		return s.ssmGetParametersByPath(rc)
	case "PutParameter":
		return s.ssmPutParameter(rc)
	case "LabelParameterVersion":
		return s.ssmLabelParameterVersion(rc)
	case "DeleteParameter":
		return s.ssmDeleteParameter(rc)
	case "DeleteParameters":
		return s.ssmDeleteParameters(rc)
	}
	return nil, unknownOperation(rc.call.Operation)
}

type ssmParameter struct {
	Name             string     `json:"Name"`
	Type             string     `json:"Type"`
	Value            string     `json:"Value"`
	Version          int64      `json:"Version"`
	Selector         string     `json:"Selector,omitempty"`
	LastModifiedDate *epochTime `json:"LastModifiedDate,omitempty"`
	ARN              string     `json:"ARN"`
	DataType         string     `json:"DataType"`
}

// paramRef is a parsed parameter reference: a name or ARN, optionally
// followed by ":<version>" or ":<label>".
type paramRef struct {
	raw      string // exactly as requested, echoed in InvalidParameters
	name     string // stored name, e.g. "/app/db-host"
	selector string // "3" or "stable"; "" for the latest version
	arn      string // the resource ARN, used for authorisation
	byARN    bool
	foreign  bool // an ARN for another region or account: never found here
}

// parseParamRef splits a requested name. ARNs have colons of their own, so
// the selector is looked for only after the "parameter/" resource part.
func (s *Server) parseParamRef(region, raw string) paramRef {
	ref := paramRef{raw: raw}
	if !strings.HasPrefix(raw, "arn:") {
		ref.name, ref.selector, _ = strings.Cut(raw, ":")
		ref.arn = s.paramARN(region, ref.name)
		return ref
	}
	ref.byARN = true
	// arn:<partition>:ssm:<region>:<account>:parameter/<path>[:selector]
	f := strings.SplitN(raw, ":", 6)
	if len(f) != 6 || f[2] != ServiceSSM || !strings.HasPrefix(f[5], "parameter/") {
		ref.foreign, ref.arn = true, raw
		return ref
	}
	resource, sel, _ := strings.Cut(strings.TrimPrefix(f[5], "parameter"), ":")
	ref.name, ref.selector = resource, sel
	ref.arn = strings.Join(append(f[:5:5], "parameter"+resource), ":")
	ref.foreign = f[3] != region || f[4] != s.account
	return ref
}

// find resolves a reference in a region. An ARN cannot tell "/name" from
// "name" (both are ".../parameter/name"), so both are tried. Callers hold
// dataMu.
func (rd *regionData) findParam(ref paramRef) *parameter {
	if ref.foreign {
		return nil
	}
	if p, ok := rd.params[ref.name]; ok {
		return p
	}
	if ref.byARN && strings.Count(ref.name, "/") == 1 {
		return rd.params[strings.TrimPrefix(ref.name, "/")]
	}
	return nil
}

// render builds the wire Parameter. SecureString values are only revealed
// with decryption; otherwise a ciphertext stand-in is returned, as SSM
// returns the KMS ciphertext.
func (s *Server) renderParam(region string, ref paramRef, p *parameter, v *paramVersion, decrypt bool) ssmParameter {
	out := ssmParameter{
		Name:             p.name,
		Type:             v.typ,
		Value:            v.value,
		Version:          v.version,
		LastModifiedDate: epochPtr(v.modified),
		ARN:              s.paramARN(region, p.name),
		DataType:         "text",
	}
	if ref.byARN {
		// Requests by ARN (as for parameters shared across accounts) get
		// the ARN back as the name.
		out.Name = ref.arn
	}
	if ref.selector != "" {
		out.Selector = ":" + ref.selector
	}
	if v.typ == TypeSecureString && !decrypt {
		out.Value = ciphertext(out.ARN, v.version)
	}
	return out
}

func paramNotFound() *apiError { return clientErr("ParameterNotFound", "") }

func paramVersionNotFound(ref paramRef) *apiError {
	if _, err := strconv.Atoi(ref.selector); err == nil {
		return clientErr("ParameterVersionNotFound", "Systems Manager could not find version %s of %s. Verify the version and try again.", ref.selector, ref.name)
	}
	return clientErr("ParameterVersionNotFound", "Systems Manager could not find label %s of %s. Verify the label and try again.", ref.selector, ref.name)
}

// --- GetParameter / GetParameters -------------------------------------------

type ssmGetParameterInput struct {
	Name           string
	WithDecryption bool
}

func (s *Server) ssmGetParameter(rc *reqCtx) (any, *apiError) {
	var in ssmGetParameterInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.Name}
	if in.Name == "" {
		return nil, validationErr("Value '' at 'name' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	ref := s.parseParamRef(rc.call.Region, in.Name)
	if e := rc.authorize(ssmActionPrefix+"GetParameter", ref.arn); e != nil {
		return nil, e
	}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	p := s.regionRead(rc.call.Region).findParam(ref)
	if p == nil {
		return nil, paramNotFound()
	}
	v, ok := p.selectVersion(ref.selector)
	if !ok {
		return nil, paramVersionNotFound(ref)
	}
	return struct {
		Parameter ssmParameter `json:"Parameter"`
	}{s.renderParam(rc.call.Region, ref, p, v, in.WithDecryption)}, nil
}

type ssmGetParametersInput struct {
	Names          []string
	WithDecryption bool
}

func (s *Server) ssmGetParameters(rc *reqCtx) (any, *apiError) {
	var in ssmGetParametersInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = slices.Clone(in.Names)
	switch {
	case len(in.Names) == 0:
		return nil, validationErr("Value '[]' at 'names' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(in.Names) > maxGetParametersNames:
		return nil, validationErr("Value '%v' at 'names' failed to satisfy constraint: Member must have length less than or equal to %d", in.Names, maxGetParametersNames)
	}
	// Duplicates are answered once.
	var refs []paramRef
	for _, n := range in.Names {
		if !slices.ContainsFunc(refs, func(r paramRef) bool { return r.raw == n }) {
			refs = append(refs, s.parseParamRef(rc.call.Region, n))
		}
	}
	// IAM authorises a multi-resource call as a whole: one denied resource
	// fails the entire request.
	for _, ref := range refs {
		if e := rc.authorize(ssmActionPrefix+"GetParameters", ref.arn); e != nil {
			return nil, e
		}
	}
	out := struct {
		Parameters        []ssmParameter `json:"Parameters"`
		InvalidParameters []string       `json:"InvalidParameters"`
	}{Parameters: []ssmParameter{}, InvalidParameters: []string{}}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	rd := s.regionRead(rc.call.Region)
	for _, ref := range refs {
		p := rd.findParam(ref)
		if p == nil {
			out.InvalidParameters = append(out.InvalidParameters, ref.raw)
			continue
		}
		v, ok := p.selectVersion(ref.selector)
		if !ok {
			out.InvalidParameters = append(out.InvalidParameters, ref.raw)
			continue
		}
		out.Parameters = append(out.Parameters, s.renderParam(rc.call.Region, ref, p, v, in.WithDecryption))
	}
	return out, nil
}

// --- GetParametersByPath ----------------------------------------------------

type ssmParameterFilter struct {
	Key    string
	Option string
	Values []string
}

type ssmGetParametersByPathInput struct {
	Path             string
	Recursive        bool
	WithDecryption   bool
	MaxResults       *int
	NextToken        *string
	ParameterFilters []ssmParameterFilter
}

func (s *Server) ssmGetParametersByPath(rc *reqCtx) (any, *apiError) {
	var in ssmGetParametersByPathInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.Path}
	if !strings.HasPrefix(in.Path, "/") {
		return nil, clientErr("ValidationException", "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".")
	}
	limit := maxParametersByPathPage
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > maxParametersByPathPage {
			return nil, validationErr("Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to %d", *in.MaxResults, maxParametersByPathPage)
		}
		limit = *in.MaxResults
	}
	after := ""
	if in.NextToken != nil {
		var ok bool
		if after, ok = decodeToken(*in.NextToken); !ok {
			return nil, clientErr("InvalidNextToken", "The specified token isn't valid.")
		}
	}
	var labels, types []string
	for _, f := range in.ParameterFilters {
		if f.Option != "" && f.Option != "Equals" {
			return nil, clientErr("InvalidFilterOption", "The filter option %q is not supported by the fake for key %s.", f.Option, f.Key)
		}
		switch f.Key {
		case "Label":
			labels = append(labels, f.Values...)
		case "Type":
			types = append(types, f.Values...)
		default:
			return nil, clientErr("InvalidFilterKey", "The following filter key is not valid: %s.", f.Key)
		}
	}
	// The path itself is the authorised resource; the parameters under it
	// are not checked one by one.
	if e := rc.authorize(ssmActionPrefix+"GetParametersByPath", s.paramARN(rc.call.Region, strings.TrimSuffix(in.Path, "/"))); e != nil {
		return nil, e
	}

	prefix := in.Path
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	out := struct {
		Parameters []ssmParameter `json:"Parameters"`
		NextToken  *string        `json:"NextToken,omitempty"`
	}{Parameters: []ssmParameter{}}
	s.dataMu.RLock()
	defer s.dataMu.RUnlock()
	rd := s.regionRead(rc.call.Region)
	for _, name := range rd.sortedParamNames() {
		if in.NextToken != nil && name <= after {
			continue
		}
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || rest == "" || (!in.Recursive && strings.Contains(rest, "/")) {
			continue
		}
		p := rd.params[name]
		v := p.latest()
		if len(labels) > 0 {
			v = nil
			for _, l := range labels {
				if lv, ok := p.selectVersion(l); ok {
					v = lv
					break
				}
			}
		}
		if v == nil || (len(types) > 0 && !slices.Contains(types, v.typ)) {
			continue
		}
		if len(out.Parameters) == limit {
			tok := encodeToken(out.Parameters[limit-1].Name)
			out.NextToken = &tok
			break
		}
		out.Parameters = append(out.Parameters, s.renderParam(rc.call.Region, paramRef{}, p, v, in.WithDecryption))
	}
	return out, nil
}

// --- PutParameter / LabelParameterVersion / DeleteParameter -----------------

type ssmPutParameterInput struct {
	Name        string
	Value       *string
	Type        string
	Overwrite   bool
	Description string
}

func (s *Server) ssmPutParameter(rc *reqCtx) (any, *apiError) {
	var in ssmPutParameterInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.Name}
	if e := rc.authorize(ssmActionPrefix+"PutParameter", s.paramARN(rc.call.Region, in.Name)); e != nil {
		return nil, e
	}
	if e := validateParamName(in.Name); e != nil {
		return nil, e
	}
	if in.Value == nil || *in.Value == "" {
		return nil, validationErr("Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if in.Type != "" && !validParamType(in.Type) {
		return nil, validationErr("Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	operation := "Create"
	if _, exists := s.regionRead(rc.call.Region).params[in.Name]; exists {
		operation = "Update"
		if !in.Overwrite {
			return nil, clientErr("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
		}
	} else if in.Type == "" {
		return nil, clientErr("ValidationException", "A parameter type is required when you create a parameter.")
	}
	version := s.putParamLocked(rc.call.Region, in.Name, *in.Value, in.Type)
	typ := s.regionRead(rc.call.Region).params[in.Name].latest().typ
	rc.emit(s.ssmEvent(rc.call.Region, operation, in.Name, typ, in.Description))
	return struct {
		Version int64  `json:"Version"`
		Tier    string `json:"Tier"`
	}{version, "Standard"}, nil
}

// validateParamName applies the naming rules SSM enforces on writes.
func validateParamName(name string) *apiError {
	lower := strings.ToLower(strings.TrimPrefix(name, "/"))
	switch {
	case name == "":
		return validationErr("Value '' at 'name' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case strings.HasPrefix(lower, "aws") || strings.HasPrefix(lower, "ssm"):
		return clientErr("ValidationException", "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).")
	case strings.Contains(name, "/") && !strings.HasPrefix(name, "/"):
		return clientErr("ValidationException", "Parameter name must be a fully qualified name.")
	case strings.ContainsAny(name, ": ") || strings.HasSuffix(name, "/"):
		return clientErr("ValidationException", "Parameter name %q is not valid.", name)
	}
	return nil
}

type ssmLabelParameterVersionInput struct {
	Name             string
	ParameterVersion *int64
	Labels           []string
}

func (s *Server) ssmLabelParameterVersion(rc *reqCtx) (any, *apiError) {
	var in ssmLabelParameterVersionInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.Name}
	ref := s.parseParamRef(rc.call.Region, in.Name)
	if e := rc.authorize(ssmActionPrefix+"LabelParameterVersion", ref.arn); e != nil {
		return nil, e
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	p := s.regionRead(rc.call.Region).findParam(ref)
	if p == nil {
		return nil, paramNotFound()
	}
	v := p.latest()
	if in.ParameterVersion != nil {
		var ok bool
		if v, ok = p.selectVersion(strconv.FormatInt(*in.ParameterVersion, 10)); !ok {
			return nil, clientErr("ParameterVersionNotFound", "Systems Manager could not find version %d of %s. Verify the version and try again.", *in.ParameterVersion, p.name)
		}
	}
	invalid, e := p.label(v, in.Labels)
	if e != nil {
		return nil, e
	}
	rc.emit(s.ssmEvent(rc.call.Region, "LabelParameterVersion", p.name, v.typ, ""))
	return struct {
		InvalidLabels    []string `json:"InvalidLabels"`
		ParameterVersion int64    `json:"ParameterVersion"`
	}{append([]string{}, invalid...), v.version}, nil
}

type ssmDeleteParameterInput struct{ Name string }

func (s *Server) ssmDeleteParameter(rc *reqCtx) (any, *apiError) {
	var in ssmDeleteParameterInput
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = []string{in.Name}
	ref := s.parseParamRef(rc.call.Region, in.Name)
	if e := rc.authorize(ssmActionPrefix+"DeleteParameter", ref.arn); e != nil {
		return nil, e
	}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	rd := s.regionRead(rc.call.Region)
	p := rd.findParam(ref)
	if p == nil {
		return nil, paramNotFound()
	}
	delete(rd.params, p.name)
	rc.emit(s.ssmEvent(rc.call.Region, "Delete", p.name, p.latest().typ, ""))
	return struct{}{}, nil
}

// ssmDeleteParameters deletes up to ten parameters; the names it cannot
// find are listed, not errors. Each deletion is an event of its own.
func (s *Server) ssmDeleteParameters(rc *reqCtx) (any, *apiError) {
	var in struct{ Names []string }
	if e := decodeInput(rc.body, &in); e != nil {
		return nil, e
	}
	rc.call.Resources = slices.Clone(in.Names)
	switch {
	case len(in.Names) == 0:
		return nil, validationErr("Value '[]' at 'names' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(in.Names) > maxGetParametersNames:
		return nil, validationErr("Value '%v' at 'names' failed to satisfy constraint: Member must have length less than or equal to %d", in.Names, maxGetParametersNames)
	}
	refs := make([]paramRef, len(in.Names))
	for i, n := range in.Names {
		refs[i] = s.parseParamRef(rc.call.Region, n)
		if e := rc.authorize(ssmActionPrefix+"DeleteParameters", refs[i].arn); e != nil {
			return nil, e
		}
	}
	out := struct {
		DeletedParameters []string `json:"DeletedParameters"`
		InvalidParameters []string `json:"InvalidParameters"`
	}{DeletedParameters: []string{}, InvalidParameters: []string{}}
	s.dataMu.Lock()
	defer s.dataMu.Unlock()
	rd := s.regionRead(rc.call.Region)
	for _, ref := range refs {
		p := rd.findParam(ref)
		if p == nil {
			out.InvalidParameters = append(out.InvalidParameters, ref.raw)
			continue
		}
		delete(rd.params, p.name)
		out.DeletedParameters = append(out.DeletedParameters, ref.raw)
		rc.emit(s.ssmEvent(rc.call.Region, "Delete", p.name, p.latest().typ, ""))
	}
	return out, nil
}
