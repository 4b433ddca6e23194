// Package spc parses and validates the parameters of a SecretProviderClass
// as the driver sends them in a Mount request: the AWS provider's schema
// (objects, region, failoverRegion, pathTranslation, usePodIdentity,
// preferredAddressType) plus coffer's additions. Parsing is strict and
// reports every problem at once; it never touches AWS.
package spc

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
)

// Parameter keys of spec.parameters.
const (
	KeyObjects              = "objects"
	KeyRegion               = "region"
	KeyFailoverRegion       = "failoverRegion"
	KeyPathTranslation      = "pathTranslation"
	KeyUsePodIdentity       = "usePodIdentity"
	KeyPreferredAddressType = "preferredAddressType"
	KeyAssumeRoleARN        = "assumeRoleArn"
	KeyAssumeRoleExternalID = "assumeRoleExternalId"
	// KeySyncSecrets declares Kubernetes Secrets to sync (package
	// secretsync); a mount ignores it.
	KeySyncSecrets = "syncSecrets"
)

// Attributes the driver adds to every Mount request.
const (
	AttrSPCName        = "secretProviderClass"
	AttrPodName        = "csi.storage.k8s.io/pod.name"
	AttrPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	AttrPodUID         = "csi.storage.k8s.io/pod.uid"
	AttrServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	AttrTokens         = "csi.storage.k8s.io/serviceAccount.tokens"
	driverAttrPrefix   = "csi.storage.k8s.io/"
)

var parameterKeys = []string{
	KeyObjects, KeyRegion, KeyFailoverRegion, KeyPathTranslation, KeyUsePodIdentity,
	KeyPreferredAddressType, KeyAssumeRoleARN, KeyAssumeRoleExternalID, KeySyncSecrets, KeyFiles,
}

// Pod identifies the workload a Mount is for, as the driver reports it.
type Pod struct {
	Namespace, Name, UID, ServiceAccount string
}

// Config is a validated SecretProviderClass, ready to fetch.
type Config struct {
	// Name is the SecretProviderClass name when the driver sent it.
	Name                 string
	Region               string
	FailoverRegion       string
	UsePodIdentity       bool
	PreferredAddressType string // "auto", "ipv4" or "ipv6"
	AssumeRoleARN        string
	AssumeRoleExternalID string
	// PathTranslation replaces "/" in file names ("" keeps it).
	PathTranslation string
	Objects         []*Object
	// Files are the templated files (coffer extension), in order.
	Files []*FileTemplate
	Pod   Pod
	// Tokens is the raw csi.storage.k8s.io/serviceAccount.tokens attribute,
	// parsed by the auth package. It is a credential: never log it.
	Tokens string
}

// FileCount counts the files a mount of the configuration writes: each
// object's own and one per jmesPath entry (unless writeFile: false), and
// one per templated file. (expandJSON and path or filter objects render a
// file per key or member instead, known only once fetched.)
func (c *Config) FileCount() int {
	n := len(c.Files)
	for _, o := range c.Objects {
		if !o.NoFile {
			n++
		}
		for _, e := range o.JMESPath {
			if !e.NoFile {
				n++
			}
		}
	}
	return n
}

// Options carry the provider's defaults into parsing.
type Options struct {
	// DefaultRegion is used when the region parameter is empty.
	DefaultRegion string
	// RequireRegion makes a missing region a problem. The CLI's validate
	// command leaves it off because the region may come from the node.
	RequireRegion bool
	// DefaultMode is the file mode for objects without filePermission.
	DefaultMode fs.FileMode
	// MaxObjects bounds the number of objects (0: DefaultMaxObjects).
	MaxObjects int
}

// ParseAttributes decodes the attributes JSON of a Mount request.
func ParseAttributes(raw string) (map[string]string, error) {
	var attrs map[string]string
	if err := json.Unmarshal([]byte(raw), &attrs); err != nil {
		return nil, fmt.Errorf("the attributes sent by the driver are not a JSON object of strings: %w", err)
	}
	return attrs, nil
}

// ParsePermission reads the request's permission field, a decimal file mode
// ("420" is 0644). Empty means 0644.
func ParsePermission(s string) (fs.FileMode, error) {
	if s == "" {
		return 0o644, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("permission %q from the driver is not a decimal file mode between 0 and 511", s)
	}
	return fs.FileMode(n), nil
}

// Parse validates attributes (SecretProviderClass parameters merged with the
// driver's attributes) and returns the configuration or a *ValidationError
// listing every problem.
func Parse(attrs map[string]string, opts Options) (*Config, error) {
	var ps yamlcheck.Checker
	cfg := &Config{
		Name: attrs[AttrSPCName],
		Pod: Pod{
			Namespace:      attrs[AttrPodNamespace],
			Name:           attrs[AttrPodName],
			UID:            attrs[AttrPodUID],
			ServiceAccount: attrs[AttrServiceAccount],
		},
		Tokens: attrs[AttrTokens],
	}
	if opts.DefaultMode == 0 {
		opts.DefaultMode = 0o644
	}
	if !checkClassSize(attrs, &ps) {
		return nil, Invalid(cfg.Name, ps.Problems) // before any YAML: see limits.go
	}
	checkParameterKeys(attrs, &ps)

	cfg.Region = strings.TrimSpace(attrs[KeyRegion])
	switch {
	case cfg.Region != "" && !ValidRegion(cfg.Region):
		ps.Add("parameters", KeyRegion, "%q is not an AWS region code; use one like us-east-1", cfg.Region)
	case cfg.Region == "" && opts.DefaultRegion != "":
		cfg.Region = opts.DefaultRegion
	case cfg.Region == "" && opts.RequireRegion:
		ps.Add("parameters", KeyRegion, "no region: set parameters.region in the SecretProviderClass, or start coffer with --region (or AWS_REGION), or label the node with topology.kubernetes.io/region")
	}
	cfg.FailoverRegion = strings.TrimSpace(attrs[KeyFailoverRegion])
	switch {
	case cfg.FailoverRegion == "":
	case !ValidRegion(cfg.FailoverRegion):
		ps.Add("parameters", KeyFailoverRegion, "%q is not an AWS region code; use one like us-west-2", cfg.FailoverRegion)
	case cfg.FailoverRegion == cfg.Region:
		ps.Add("parameters", KeyFailoverRegion, "%q is also the primary region; name a different region, or remove failoverRegion", cfg.FailoverRegion)
	}

	translation, err := parsePathTranslation(attrs[KeyPathTranslation])
	if err != nil {
		ps.Add("parameters", KeyPathTranslation, "%v", err)
	}
	cfg.PathTranslation = translation

	if v := attrs[KeyUsePodIdentity]; v != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			ps.Add("parameters", KeyUsePodIdentity, "%q is not a boolean; use \"true\" (EKS Pod Identity) or \"false\" (IRSA, the default)", v)
		}
		cfg.UsePodIdentity = b
	}
	switch v := strings.ToLower(strings.TrimSpace(attrs[KeyPreferredAddressType])); v {
	case "", "auto":
		cfg.PreferredAddressType = "auto"
	case "ipv4", "ipv6":
		cfg.PreferredAddressType = v
	default:
		ps.Add("parameters", KeyPreferredAddressType, "%q is not one of ipv4, ipv6, auto", attrs[KeyPreferredAddressType])
	}

	cfg.AssumeRoleARN = strings.TrimSpace(attrs[KeyAssumeRoleARN])
	cfg.AssumeRoleExternalID = attrs[KeyAssumeRoleExternalID]
	if cfg.AssumeRoleARN != "" {
		if err := checkRoleARN(cfg.AssumeRoleARN); err != nil {
			ps.Add("parameters", KeyAssumeRoleARN, "%v", err)
		}
	}
	if cfg.AssumeRoleExternalID != "" {
		if cfg.AssumeRoleARN == "" {
			ps.Add("parameters", KeyAssumeRoleExternalID, "is set but assumeRoleArn is not; set assumeRoleArn to the role that expects this external id")
		} else if !validExternalID(cfg.AssumeRoleExternalID) {
			ps.Add("parameters", KeyAssumeRoleExternalID, "must be 2-1224 characters of letters, digits and _+=,.@:/-")
		}
	}

	raw, ok := attrs[KeyObjects]
	if !ok || strings.TrimSpace(raw) == "" {
		ps.Add("parameters", KeyObjects, "is missing or empty; list the secrets to mount as a YAML list, for example objects: '[{objectName: prod/db, objectType: secretsmanager}]'")
	} else {
		p := objectParser{cfg: cfg, translation: translation, defaultMode: opts.DefaultMode, ps: &ps, maxObjects: opts.MaxObjects}
		if p.maxObjects <= 0 {
			p.maxObjects = DefaultMaxObjects
		}
		cfg.Objects = p.parse(raw)
		if raw := attrs[KeyFiles]; strings.TrimSpace(raw) != "" {
			cfg.Files = parseFiles(raw, cfg.Objects, opts.DefaultMode, &ps)
		}
		checkPaths(cfg.Objects, cfg.Files, &ps)
	}
	if err := Invalid(cfg.Name, ps.Problems); err != nil {
		return nil, err
	}
	return cfg, nil
}

func sourceName(name string) string {
	if name == "" {
		return "SecretProviderClass"
	}
	return fmt.Sprintf("SecretProviderClass %q", name)
}

// checkParameterKeys reports top-level keys that look like a mistyped
// parameter. Other unknown keys are left alone: the driver merges the pod's
// volumeAttributes into the same map, and those may carry anything.
func checkParameterKeys(attrs map[string]string, ps *yamlcheck.Checker) {
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	known := make(map[string]bool, len(parameterKeys))
	for _, k := range parameterKeys {
		known[k] = true
	}
	for _, k := range keys {
		if known[k] || k == AttrSPCName || strings.HasPrefix(k, driverAttrPrefix) {
			continue
		}
		// Nearest, not Suggest: the candidates are a few short keys, so
		// the cost is linear in the key, and every typo is reported.
		if s := yamlcheck.Nearest(k, parameterKeys); s != "" && yamlcheck.Distance(k, s) <= 2 {
			ps.Add("parameters", k, "unknown parameter; did you mean %q? (check the SecretProviderClass parameters and the pod's volumeAttributes, which the driver merges)", s)
		}
	}
}
