package esoconvert

import (
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/yamlcheck"
	"github.com/coffer-csi/coffer/provider/spc"
)

// store is what a SecretStore or ClusterSecretStore gives the classes of
// its ExternalSecrets.
type store struct {
	objectType spc.ObjectType
	region     string
	role       string
	externalID string
	prefix     string
	// serviceAccount is auth.jwt.serviceAccountRef.name, in
	// serviceAccountNamespace when the store names one.
	serviceAccount          string
	serviceAccountNamespace string
	// auth says the store names a way to authenticate (jwt or secretRef).
	auth bool
}

var (
	storeKeys       = []string{"apiVersion", "kind", "metadata", "spec", "status"}
	storeSpecKeys   = []string{"provider", "controller", "retrySettings", "refreshInterval", "conditions"}
	awsKeys         = []string{"service", "auth", "role", "region", "additionalRoles", "externalID", "sessionTags", "secretsManager", "transitiveTagKeys", "sessionTagsPolicy", "customSessionTags", "prefix"}
	awsAuthKeys     = []string{"secretRef", "jwt"}
	jwtKeys         = []string{"serviceAccountRef"}
	serviceAcctKeys = []string{"name", "namespace", "audiences"}
)

// store reads the store key names, once; nil when it is not in the input
// or converts to nothing (its lines say why).
func (c *converter) store(key storeKey) (*store, bool) {
	if s, done := c.parsed[key]; done {
		return s, true
	}
	d, ok := c.stores[key]
	if !ok {
		return nil, false
	}
	s := c.readStore(ref{kind: key.kind, name: key.name}, d)
	c.parsed[key] = s
	return s, true
}

func (c *converter) readStore(r ref, d *yaml.Node) *store {
	top := c.fields(r, d, "", storeKeys...)
	if v := c.scalar(r, top, "apiVersion", ""); v != esoGroup+"/v1" && v != esoGroup+"/v1beta1" {
		c.drop(r, "apiVersion", "apiVersion-other", "")
		return nil
	}
	c.metadata(r, top["metadata"], nil)
	specNode, ok := top["spec"]
	if !ok {
		c.drop(r, "spec", "malformed", "the store has no spec")
		return nil
	}
	spec := c.fields(r, specNode, "spec", storeSpecKeys...)
	for _, k := range storeSpecKeys[1:] {
		if _, ok := spec[k]; ok {
			c.drop(r, "spec."+k, "store.other", "")
		}
	}
	provNode, ok := spec["provider"]
	if !ok {
		c.drop(r, "spec.provider", "malformed", "the store names no provider")
		return nil
	}
	if provNode.Kind != yaml.MappingNode {
		c.drop(r, "spec.provider", "malformed", "want a mapping")
		return nil
	}
	awsNode := field(provNode, "aws")
	if awsNode == nil || len(provNode.Content) != 2 {
		c.drop(r, "spec.provider", "store.provider-other", "")
		return nil
	}
	const path = "spec.provider.aws"
	aws := c.fields(r, awsNode, path, awsKeys...)
	s := &store{}
	switch v := c.scalar(r, aws, "service", path); v {
	case "SecretsManager":
		s.objectType = spc.SecretsManager
	case "ParameterStore":
		s.objectType = spc.ParameterStore
	case "CertificateManager":
		c.drop(r, path+".service", "store.service-acm", "")
		return nil
	default:
		c.drop(r, path+".service", "malformed", "want SecretsManager or ParameterStore")
		return nil
	}
	s.region = c.scalar(r, aws, "region", path)
	s.role = c.scalar(r, aws, "role", path)
	if s.role != "" && !strings.HasPrefix(s.role, "arn:") {
		c.drop(r, path+".role", "store.role-name", "")
		s.role = ""
	}
	s.externalID = c.scalar(r, aws, "externalID", path)
	if s.externalID != "" && s.role == "" {
		c.drop(r, path+".externalID", "store.externalID", "there is no role to assume with it")
		s.externalID = ""
	}
	s.prefix = c.scalar(r, aws, "prefix", path)
	if _, ok := aws["additionalRoles"]; ok {
		c.drop(r, path+".additionalRoles", "store.additionalRoles", "")
	}
	for _, k := range []string{"sessionTags", "transitiveTagKeys", "sessionTagsPolicy", "customSessionTags"} {
		if _, ok := aws[k]; ok {
			c.drop(r, path+"."+k, "store.sessionTags", "")
		}
	}
	if _, ok := aws["secretsManager"]; ok {
		c.drop(r, path+".secretsManager", "store.secretsManager", "")
	}
	if authNode, ok := aws["auth"]; ok {
		auth := c.fields(r, authNode, path+".auth", awsAuthKeys...)
		if _, ok := auth["secretRef"]; ok {
			s.auth = true
			c.drop(r, path+".auth.secretRef", "store.secretRef", "")
		}
		if jwtNode, ok := auth["jwt"]; ok {
			s.auth = true
			jwt := c.fields(r, jwtNode, path+".auth.jwt", jwtKeys...)
			if saNode, ok := jwt["serviceAccountRef"]; ok {
				const saPath = path + ".auth.jwt.serviceAccountRef"
				sa := c.fields(r, saNode, saPath, serviceAcctKeys...)
				s.serviceAccount = c.scalar(r, sa, "name", saPath)
				s.serviceAccountNamespace = c.scalar(r, sa, "namespace", saPath)
				if _, ok := sa["audiences"]; ok {
					c.drop(r, saPath+".audiences", "store.jwt-audiences", "")
				}
			}
		}
	}
	return s
}

// identity works out the entry's serviceAccountName for an ExternalSecret
// in namespace ns, printing what differs from the store.
func (c *converter) identity(es ref, s *store, storeRef ref, ns string) string {
	const saPath = "spec.provider.aws.auth.jwt.serviceAccountRef"
	// ESO ignores the namespace of a SecretStore's ServiceAccount: it is
	// the store's own, the ExternalSecret's.
	sameNamespace := s.serviceAccountNamespace == "" || s.serviceAccountNamespace == ns || storeRef.kind == "SecretStore"
	switch {
	case s.serviceAccount != "" && sameNamespace:
		return s.serviceAccount
	case s.serviceAccount != "" && c.opts.ServiceAccount != "":
		c.note(es, "spec.secretStoreRef", "store.no-auth")
		return c.opts.ServiceAccount
	case s.serviceAccount != "":
		c.drop(storeRef, saPath+".namespace", "store.jwt-namespace", "the ServiceAccount is in "+yamlcheck.Name(s.serviceAccountNamespace)+", the ExternalSecret in "+orDefault(ns))
		return ""
	case c.opts.ServiceAccount != "":
		c.note(es, "spec.secretStoreRef", "store.no-auth")
		return c.opts.ServiceAccount
	case !s.auth:
		c.drop(storeRef, "spec.provider.aws.auth", "store.no-auth-missing", "")
	}
	return ""
}

func orDefault(ns string) string {
	if strings.TrimSpace(ns) == "" {
		return "the current namespace"
	}
	return yamlcheck.Name(ns)
}
