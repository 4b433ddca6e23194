package spc

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// coffer's extensions to the AWS provider's object schema. A class that
// uses them does not work with the AWS provider; one that does not is
// untouched by them.
const (
	keyPath       = "path"
	keyRecursive  = "recursive"
	keyFilters    = "filters"
	keyMaxMembers = "maxMembers"
	keyExpandJSON = "expandJSON"
	keyDecoding   = "decoding"
)

// Decodings a value may be stored in.
const (
	DecodingNone      = ""
	DecodingBase64    = "base64"
	DecodingBase64URL = "base64url"
)

// Default and largest number of members a path or filter object may mount.
const (
	DefaultMaxMembers = 100
	MaxMaxMembers     = 1000
)

// Filter selects Secrets Manager secrets, as BatchGetSecretValue's Filters
// do: Key is one of name (a prefix), tag-key, tag-value, description,
// primary-region, owning-service or all.
type Filter struct {
	Key    string
	Values []string
}

var filterKeys = []string{"name", "tag-key", "tag-value", "description", "primary-region", "owning-service", "all"}

var filterEntryKeys = []string{"key", "values"}

// Bulk reports whether the object selects many entries (a path or filters)
// rather than naming one.
func (o *Object) Bulk() bool { return o.ParameterPath != "" || len(o.Filters) > 0 }

// WritesDirectory reports whether the object's Path is a directory of
// member or key files rather than a file.
func (o *Object) WritesDirectory() bool { return o.Bulk() || o.ExpandJSON }

var parameterPathPattern = regexp.MustCompile(`^/[A-Za-z0-9/_.-]*$`)

// parseBulk reads the path or filters of an object that has no objectName.
func (p *objectParser) parseBulk(o *Object, f map[string]*yaml.Node, declaredType, where string) {
	_, hasPath := f[keyPath]
	_, hasFilters := f[keyFilters]
	switch {
	case hasPath && hasFilters:
		p.ps.Add(where, keyFilters, "an object selects by path (Parameter Store) or by filters (Secrets Manager), not both; split it in two")
		return
	case hasPath:
		o.Type = ParameterStore
		if declaredType != "" && !strings.EqualFold(declaredType, string(ParameterStore)) {
			p.ps.Add(where, "objectType", "is %q, but path selects Parameter Store parameters; use objectType: ssmparameter", declaredType)
		}
		o.ParameterPath = p.ps.Scalar(f, keyPath, where)
		o.Name = o.ParameterPath
		switch {
		case o.ParameterPath == "":
			p.ps.Add(where, keyPath, "is empty; name a Parameter Store path such as /app/prod/")
		case !parameterPathPattern.MatchString(o.ParameterPath) || strings.Contains(o.ParameterPath, "//") || len(o.ParameterPath) > 2048:
			p.ps.Add(where, keyPath, "%q is not a Parameter Store path; it must start with / and use letters, digits and _.-/ (for example /app/prod/)", o.ParameterPath)
		}
		if v := p.ps.Scalar(f, keyRecursive, where); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				p.ps.Add(where, keyRecursive, "%q is not a boolean; use true (the whole tree under the path) or false (its direct children, the default)", v)
			}
			o.Recursive = b
		}
	case hasFilters:
		o.Type = SecretsManager
		if declaredType != "" && !strings.EqualFold(declaredType, string(SecretsManager)) {
			p.ps.Add(where, "objectType", "is %q, but filters select Secrets Manager secrets; use objectType: secretsmanager", declaredType)
		}
		o.Filters = p.filters(f[keyFilters], where)
		o.Name = describeFilters(o.Filters)
	default:
		p.ps.Add(where, "objectName", "is required: the Secrets Manager secret or Parameter Store parameter to mount, by name or ARN (or, as coffer extensions, path: for a Parameter Store path or filters: for Secrets Manager secrets)")
		return
	}
	if o.Alias == "" {
		p.ps.Add(where, "objectAlias", "is required with %s: the directory the selected entries are written into", map[bool]string{true: "path", false: "filters"}[hasPath])
	}
	for _, k := range []string{"objectVersion", "objectVersionLabel", "jmesPath", "failoverObject", keyExpandJSON} {
		if _, ok := f[k]; ok {
			p.ps.Add(where, k, "cannot be used with %s, which selects many entries; remove it", map[bool]string{true: "path", false: "filters"}[hasPath])
		}
	}
	o.MaxMembers = DefaultMaxMembers
	if v := p.ps.Scalar(f, keyMaxMembers, where); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxMaxMembers {
			p.ps.Add(where, keyMaxMembers, "%q must be a whole number from 1 to %d", v, MaxMaxMembers)
		} else {
			o.MaxMembers = n
		}
	}
}

func (p *objectParser) filters(n *yaml.Node, where string) []Filter {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.ps.Add(where, keyFilters, "must be a list of {key, values} such as [{key: name, values: [app/prod/]}]")
		return nil
	}
	var out []Filter
	for j, item := range n.Content {
		w := fmt.Sprintf("%s.filters[%d]", where, j)
		if item.Kind != yaml.MappingNode {
			p.ps.Add(w, "", "must be a mapping with key and values")
			continue
		}
		ff := p.ps.Fields(item, filterEntryKeys, w)
		flt := Filter{Key: p.ps.Scalar(ff, "key", w)}
		if !slices.Contains(filterKeys, flt.Key) {
			p.ps.Add(w, "key", "%q is not a Secrets Manager filter key; use one of %s", flt.Key, strings.Join(filterKeys, ", "))
		}
		vn, ok := ff["values"]
		switch {
		case !ok || vn.Kind != yaml.SequenceNode || len(vn.Content) == 0:
			p.ps.Add(w, "values", "must be a non-empty list of strings")
		case len(vn.Content) > 10:
			p.ps.Add(w, "values", "has %d values; Secrets Manager allows at most 10 per filter", len(vn.Content))
		default:
			for _, v := range vn.Content {
				if v.Kind != yaml.ScalarNode || v.Value == "" || len(v.Value) > 512 {
					p.ps.Add(w, "values", "each value must be a non-empty string of at most 512 characters")
					continue
				}
				flt.Values = append(flt.Values, v.Value)
			}
		}
		out = append(out, flt)
	}
	return out
}

func describeFilters(fs []Filter) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.Key + "=" + strings.Join(f.Values, "|")
	}
	return "filters " + strings.Join(parts, ",")
}

// decoding reads a decoding field.
func (p *objectParser) decoding(f map[string]*yaml.Node, where string) string {
	switch v := strings.ToLower(p.ps.Scalar(f, keyDecoding, where)); v {
	case "", "none":
		return DecodingNone
	case DecodingBase64, DecodingBase64URL:
		return v
	default:
		p.ps.Add(where, keyDecoding, "%q is not a decoding; use base64, base64url or none", v)
		return DecodingNone
	}
}
