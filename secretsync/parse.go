package secretsync

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/internal/yamlcheck"
	"github.com/coffer-csi/coffer/provider/spc"
)

// Keys of a syncSecrets entry and of its parts.
var (
	entryKeys    = []string{"secretName", "type", "labels", "annotations", "immutable", "creationPolicy", "deletionPolicy", "data", "dataFrom", "template", "refreshInterval", "serviceAccountName"}
	dataKeys     = []string{"key", "objectName", "decoding"}
	dataFromKeys = []string{"extract", "decoding"}
	templateKeys = []string{"data", "mergePolicy"}
)

// esoHints explain ExternalSecret fields that have no key of the same name
// here, so a migrating user learns where the field went.
var esoHints = map[string]string{
	"name":             `use secretName`,
	"target":           `coffer has no target block: put secretName, creationPolicy, deletionPolicy, immutable, type, labels, annotations and template directly on the entry`,
	"secretstoreref":   `there is no store: the controller reads AWS as serviceAccountName, a mount as the pod; region and role come from the class's parameters`,
	"metadata":         `use labels and annotations`,
	"refreshpolicy":    `use refreshInterval`,
	"secretkey":        `use key`,
	"remoteref":        `list the AWS entry in objects and name its file with objectName (remoteRef.key is objects[].objectName, property a jmesPath entry, version objectVersion or objectVersionLabel)`,
	"property":         `add a jmesPath entry {path, objectAlias} to the object in objects and name that objectAlias with objectName`,
	"version":          `set objectVersion or objectVersionLabel on the object in objects`,
	"decodingstrategy": `use decoding: none, base64 or base64url`,
	"find":             `dataFrom.find (many secrets by name, path or tag) is not supported: list each AWS entry in objects and use extract or data`,
	"rewrite":          `dataFrom.rewrite is not supported: name each key with data, or rename keys with a template`,
	"sourceref":        `dataFrom.sourceRef (generators) is not supported`,
	"engineversion":    `templates always use Go text/template with coffer's functions`,
	"templatefrom":     `templateFrom is not supported: write the templates inline in template.data`,
}

// Parse validates the syncSecrets parameter of the SecretProviderClass whose
// other parameters parsed into cfg: file references resolve against the
// files cfg's objects produce. It returns the entries or a
// *spc.ValidationError listing every problem.
func Parse(raw string, cfg *spc.Config) ([]*Secret, error) {
	p := parser{files: indexFiles(cfg), Checker: yamlcheck.Checker{Hints: esoHints}}
	p.files.suggest = p.Suggest // bounded per declaration
	secrets := p.parse(raw)
	if err := spc.Invalid(cfg.Name, p.Problems); err != nil {
		return nil, err
	}
	return secrets, nil
}

type parser struct {
	files *fileIndex
	yamlcheck.Checker
}

func (p *parser) parse(raw string) []*Secret {
	const where = "parameters"
	if len(raw) > spc.MaxClassBytes {
		p.Add(where, spc.KeySyncSecrets, "is %d bytes, over the limit of %d; split the Secrets across several SecretProviderClasses", len(raw), spc.MaxClassBytes)
		return nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
		p.Add(where, spc.KeySyncSecrets, "is not valid YAML: %v", err)
		return nil
	}
	if len(doc.Content) == 0 {
		p.Add(where, spc.KeySyncSecrets, "is empty; list the Secrets to sync, or remove syncSecrets")
		return nil
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		p.Add(where, spc.KeySyncSecrets, "must be a YAML list of Secrets (each item starting with \"- secretName: ...\"), found a %s at line %d", yamlcheck.KindName(list), list.Line)
		return nil
	}
	if len(list.Content) == 0 {
		p.Add(where, spc.KeySyncSecrets, "is an empty list; list the Secrets to sync, or remove syncSecrets")
		return nil
	}
	if !p.Within(list, where, spc.KeySyncSecrets, MaxSyncSecrets, "split the Secrets across several SecretProviderClasses") {
		return nil
	}
	var out []*Secret
	names := map[string]int{}
	for i, item := range list.Content {
		s := p.parseEntry(i, item)
		if s == nil {
			continue
		}
		if prev, dup := names[s.Name]; dup {
			p.Add(s.Describe(), "secretName", "%q is also the secretName of syncSecrets[%d]; one Secret has one declaration: merge the two entries", s.Name, prev)
			continue
		}
		names[s.Name] = i
		out = append(out, s)
	}
	return out
}

func (p *parser) parseEntry(i int, item *yaml.Node) *Secret {
	where := describeEntry(i, "")
	if item.Kind != yaml.MappingNode {
		p.Add(where, "", "must be a mapping with secretName and data or dataFrom, found a %s at line %d", yamlcheck.KindName(item), item.Line)
		return nil
	}
	before := len(p.Problems)
	// Read secretName first, so that every problem of the entry names it.
	quiet := &yamlcheck.Checker{}
	if name := quiet.Scalar(quiet.Fields(item, entryKeys, where), "secretName", where); name != "" {
		where = describeEntry(i, name)
	}
	f := p.Fields(item, entryKeys, where)
	s := &Secret{Index: i, Name: p.secretName(f, where)}
	s.CreationPolicy = p.creationPolicy(f, where)
	s.DeletionPolicy = p.deletionPolicy(f, where)
	if s.CreationPolicy == Merge && s.DeletionPolicy == Delete {
		p.Add(where, "deletionPolicy", "Delete cannot be used with creationPolicy Merge: coffer never deletes a Secret it did not create; use Retain, or creationPolicy Owner")
	}
	s.Type = corev1.SecretTypeOpaque
	if t := p.Scalar(f, "type", where); t != "" {
		s.Type, s.TypeSet = corev1.SecretType(t), true
		p.checkType(s.Type, where)
	}
	s.Immutable = p.immutable(f, s.CreationPolicy, where)
	s.Labels = p.stringMap(f, "labels", where, true)
	s.Annotations = p.stringMap(f, "annotations", where, false)
	s.RefreshInterval = p.refreshInterval(f, where)
	s.ServiceAccountName = p.serviceAccountName(f, where)
	p.contents(s, f, where)
	p.checkStaticKeys(s, where)
	if len(p.Problems) > before {
		return nil
	}
	return s
}

func (p *parser) secretName(f map[string]*yaml.Node, where string) string {
	name := p.Scalar(f, "secretName", where)
	if name == "" {
		p.Add(where, "secretName", "is required: the name of the Kubernetes Secret to create or merge into")
		return ""
	}
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		p.Add(where, "secretName", "%q is not a valid Secret name: %s", name, msg)
	}
	return name
}

func (p *parser) creationPolicy(f map[string]*yaml.Node, where string) CreationPolicy {
	switch v := p.Scalar(f, "creationPolicy", where); strings.ToLower(v) {
	case "", "owner":
	case "orphan":
		return Orphan
	case "merge":
		return Merge
	case "none":
		p.Add(where, "creationPolicy", "None is not supported: coffer syncs the Secrets it declares; use Owner, Orphan or Merge")
	default:
		p.Add(where, "creationPolicy", "%q is not one of Owner (the default: the SecretProviderClass owns the Secret), Orphan (no owner), Merge (add keys to an existing Secret that opts in)", v)
	}
	return Owner
}

func (p *parser) deletionPolicy(f map[string]*yaml.Node, where string) DeletionPolicy {
	switch v := p.Scalar(f, "deletionPolicy", where); strings.ToLower(v) {
	case "", "retain":
	case "delete":
		return Delete
	case "merge":
		p.Add(where, "deletionPolicy", "Merge (drop only coffer's keys when the source is gone) is not supported; use Retain or Delete")
	default:
		p.Add(where, "deletionPolicy", "%q is not one of Retain (the default: keep the Secret when its AWS entries are gone) or Delete (delete it then)", v)
	}
	return Retain
}

func (p *parser) immutable(f map[string]*yaml.Node, creation CreationPolicy, where string) bool {
	v := p.Scalar(f, "immutable", where)
	if v == "" {
		return false
	}
	b, ok := parseBool(v)
	if !ok {
		p.Add(where, "immutable", "%q is not a boolean; use true or false", v)
	}
	if b && creation == Merge {
		p.Add(where, "immutable", "applies to Secrets coffer creates, not with creationPolicy Merge; remove it")
	}
	return b
}

func (p *parser) refreshInterval(f map[string]*yaml.Node, where string) time.Duration {
	v := p.Scalar(f, "refreshInterval", where)
	if v == "" {
		return DefaultRefreshInterval
	}
	d, err := time.ParseDuration(v)
	switch {
	case v == "0" || err == nil && d == 0:
		return 0
	case err != nil:
		p.Add(where, "refreshInterval", "%q is not a duration; use one like 1h, 15m or 30s (0: only when the declaration changes)", v)
	case d < MinRefreshInterval:
		p.Add(where, "refreshInterval", "%q is shorter than %s; every refresh reads AWS, use 1m or more (0: only when the declaration changes)", v, MinRefreshInterval)
	default:
		return d
	}
	return DefaultRefreshInterval
}

func (p *parser) serviceAccountName(f map[string]*yaml.Node, where string) string {
	sa := p.Scalar(f, "serviceAccountName", where)
	if sa == "" {
		return ""
	}
	for _, msg := range validation.IsDNS1123Subdomain(sa) {
		p.Add(where, "serviceAccountName", "%q is not a valid ServiceAccount name: %s", sa, msg)
	}
	return sa
}

// contents reads what fills the Secret: data, dataFrom and template.
func (p *parser) contents(s *Secret, f map[string]*yaml.Node, where string) {
	data, hasData := f["data"]
	if hasData {
		s.Data = p.data(data, where)
	}
	from, hasFrom := f["dataFrom"]
	if hasFrom {
		s.DataFrom = p.dataFrom(from, where)
	}
	if n, ok := f["template"]; ok {
		s.Template = p.template(n, where)
	}
	if !hasData && !hasFrom {
		p.Add(where, "data", "is required (or dataFrom): say which files of objects fill the Secret, for example data: [{key: password, objectName: db-password}]")
	}
}

// reservedTypes cannot be synced: the apiserver or another controller owns
// their content.
var reservedTypes = map[corev1.SecretType]string{
	corev1.SecretTypeServiceAccountToken: "the token controller fills such Secrets",
	corev1.SecretTypeBootstrapToken:      "bootstrap tokens are cluster credentials; manage them with kubeadm",
}

func (p *parser) checkType(t corev1.SecretType, where string) {
	if why, ok := reservedTypes[t]; ok {
		p.Add(where, "type", "%q cannot be synced: %s", t, why)
		return
	}
	if _, known := requiredKeys[t]; known || t == corev1.SecretTypeOpaque {
		return
	}
	if strings.HasPrefix(string(t), "kubernetes.io/") {
		p.Add(where, "type", "%q is not a Kubernetes Secret type; use Opaque, kubernetes.io/tls, kubernetes.io/dockerconfigjson, kubernetes.io/basic-auth, kubernetes.io/ssh-auth, or a type of your own domain", t)
		return
	}
	if msgs := validation.IsQualifiedName(string(t)); len(msgs) > 0 {
		p.Add(where, "type", "%q is not a valid Secret type: %s", t, strings.Join(msgs, "; "))
	}
}

// requiredKeys are the keys the apiserver requires of a Secret type; for
// basic-auth, any one of them.
var requiredKeys = map[corev1.SecretType][]string{
	corev1.SecretTypeTLS:              {corev1.TLSCertKey, corev1.TLSPrivateKeyKey},
	corev1.SecretTypeDockerConfigJson: {corev1.DockerConfigJsonKey},
	corev1.SecretTypeDockercfg:        {corev1.DockerConfigKey},
	corev1.SecretTypeSSHAuth:          {corev1.SSHAuthPrivateKey},
	corev1.SecretTypeBasicAuth:        {corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey},
}

// checkStaticKeys checks the type's required keys when the declaration
// alone decides the Secret's keys (no dataFrom, or a Replace template).
func (p *parser) checkStaticKeys(s *Secret, where string) {
	keys, known := s.staticKeys()
	if !known || s.CreationPolicy == Merge {
		return
	}
	if missing := missingKeys(s.Type, keys); missing != "" {
		p.Add(where, "type", "%q needs %s, which the declaration does not produce (it produces %s); add them to data or template.data", s.Type, missing, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
	}
}

// staticKeys returns the Secret keys the declaration produces, and whether
// that set is known without reading AWS.
func (s *Secret) staticKeys() (map[string]bool, bool) {
	keys := map[string]bool{}
	if s.Template != nil && s.Template.MergePolicy == Replace {
		for _, k := range s.Template.Keys {
			keys[k] = true
		}
		return keys, true
	}
	for _, d := range s.Data {
		keys[d.Key] = true
	}
	if s.Template != nil {
		for _, k := range s.Template.Keys {
			keys[k] = true
		}
	}
	return keys, len(s.DataFrom) == 0
}

// missingKeys names the keys type t requires that keys lacks ("" if none).
func missingKeys(t corev1.SecretType, keys map[string]bool) string {
	req := requiredKeys[t]
	if len(req) == 0 {
		return ""
	}
	if t == corev1.SecretTypeBasicAuth {
		for _, k := range req {
			if keys[k] {
				return ""
			}
		}
		return fmt.Sprintf("key %q or %q", req[0], req[1])
	}
	var missing []string
	for _, k := range req {
		if !keys[k] {
			missing = append(missing, fmt.Sprintf("%q", k))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	if len(missing) == 1 {
		return "key " + missing[0]
	}
	return "keys " + strings.Join(missing, " and ")
}

func (p *parser) data(n *yaml.Node, where string) []DataEntry {
	if n.Kind != yaml.SequenceNode {
		p.Add(where, "data", "must be a list of {key, objectName} entries, found a %s at line %d", yamlcheck.KindName(n), n.Line)
		return nil
	}
	if !p.Within(n, where, "data", MaxDataEntries, "split the keys across several Secrets, or take a JSON object's keys with dataFrom") {
		return nil
	}
	var out []DataEntry
	seen := map[string]int{}
	for j, item := range n.Content {
		w := fmt.Sprintf("%s.data[%d]", where, j)
		if item.Kind != yaml.MappingNode {
			p.Add(w, "", "must be a mapping with key and objectName, found a %s at line %d", yamlcheck.KindName(item), item.Line)
			continue
		}
		f := p.Fields(item, dataKeys, w)
		d := DataEntry{Key: p.Scalar(f, "key", w)}
		if d.Key == "" {
			p.Add(w, "key", "is required: the key of the value in the Secret")
		} else if msg := checkSecretKey(d.Key); msg != "" {
			p.Add(w, "key", "%q %s", d.Key, msg)
		} else if prev, dup := seen[d.Key]; dup {
			p.Add(w, "key", "%q is also the key of data[%d]; each key appears once", d.Key, prev)
		} else {
			seen[d.Key] = j
		}
		ref := p.Scalar(f, "objectName", w)
		if ref == "" {
			p.Add(w, "objectName", "is required: the file of objects whose content becomes the value (an objectAlias, a jmesPath objectAlias, or an objectName)")
		} else if src, msg := p.files.resolve(ref); msg != "" {
			p.Add(w, "objectName", "%s", msg)
		} else if src.Dir {
			p.Add(w, "objectName", "%q is the directory %s writes its files into (their names come from AWS); name one file in it, such as %s/<name>, or take them all with dataFrom: [{extract: %s}]", ref, src.Object.Describe(), src.Path, ref)
		} else {
			d.Source = src
		}
		d.Decoding = p.decoding(f, w)
		out = append(out, d)
	}
	return out
}

func (p *parser) dataFrom(n *yaml.Node, where string) []ExtractEntry {
	if n.Kind != yaml.SequenceNode {
		p.Add(where, "dataFrom", "must be a list of {extract: <file>} entries, found a %s at line %d", yamlcheck.KindName(n), n.Line)
		return nil
	}
	if !p.Within(n, where, "dataFrom", MaxDataFrom, "split the entries across several Secrets") {
		return nil
	}
	var out []ExtractEntry
	for j, item := range n.Content {
		w := fmt.Sprintf("%s.dataFrom[%d]", where, j)
		if item.Kind != yaml.MappingNode {
			p.Add(w, "", "must be a mapping such as {extract: db-credentials}, found a %s at line %d", yamlcheck.KindName(item), item.Line)
			continue
		}
		f := p.Fields(item, dataFromKeys, w)
		var e ExtractEntry
		ref := p.Scalar(f, "extract", w)
		if ref == "" {
			if _, ok := f["extract"]; !ok {
				p.Add(w, "extract", "is required: a file of objects holding a JSON object, whose top-level keys become Secret keys (or the directory of a path, filters or expandJSON object, whose files do)")
			} else if f["extract"].Kind == yaml.ScalarNode {
				p.Add(w, "extract", "is empty; name a file of objects")
			}
		} else if src, msg := p.files.resolve(ref); msg != "" {
			p.Add(w, "extract", "%s", msg)
		} else {
			e.Source = src
		}
		e.Decoding = p.decoding(f, w)
		out = append(out, e)
	}
	return out
}

func (p *parser) decoding(f map[string]*yaml.Node, where string) Decoding {
	switch v := p.Scalar(f, "decoding", where); strings.ToLower(v) {
	case "", "none":
		return DecodeNone
	case "base64":
		return DecodeBase64
	case "base64url":
		return DecodeBase64URL
	case "auto":
		p.Add(where, "decoding", "Auto is not supported: say what the value is, none, base64 or base64url")
	default:
		p.Add(where, "decoding", "%q is not one of none (the default), base64, base64url", v)
	}
	return DecodeNone
}

func (p *parser) template(n *yaml.Node, where string) *Template {
	w := where + ".template"
	if n.Kind != yaml.MappingNode {
		p.Add(where, "template", "must be a mapping with data (key: Go template) and optionally mergePolicy, found a %s at line %d", yamlcheck.KindName(n), n.Line)
		return nil
	}
	f := p.Fields(n, templateKeys, w)
	t := &Template{MergePolicy: Replace, texts: map[string]string{}, tmpls: map[string]*tmpl.Template{}}
	switch v := p.Scalar(f, "mergePolicy", w); strings.ToLower(v) {
	case "", "replace":
	case "merge":
		t.MergePolicy = MergeData
	default:
		p.Add(w, "mergePolicy", "%q is not one of Replace (the default: the Secret holds only the template's keys) or Merge (data and dataFrom keys too)", v)
	}
	d, ok := f["data"]
	switch {
	case !ok:
		p.Add(w, "data", "is required: a mapping of Secret keys to Go templates, for example data: {url: \"https://{{ .host }}/\"}")
		return t
	case d.Kind != yaml.MappingNode:
		p.Add(w, "data", "must be a mapping of Secret keys to Go templates, found a %s at line %d", yamlcheck.KindName(d), d.Line)
		return t
	case len(d.Content) == 0:
		p.Add(w, "data", "is empty; map at least one Secret key to a template, or remove template")
		return t
	case !p.Within(d, w, "data", MaxDataEntries, "split the keys across several Secrets"):
		return t
	}
	for i := 0; i+1 < len(d.Content); i += 2 {
		k, v := d.Content[i], d.Content[i+1]
		key := k.Value
		if msg := checkSecretKey(key); msg != "" {
			p.Add(w+".data", key, "%s", msg)
			continue
		}
		if _, dup := t.texts[key]; dup {
			p.Add(w+".data", key, "is set twice (line %d); keep one", k.Line)
			continue
		}
		if v.Kind != yaml.ScalarNode {
			p.Add(w+".data", key, "must be a template string, found a %s at line %d", yamlcheck.KindName(v), v.Line)
			continue
		}
		parsed, err := tmpl.Parse(v.Value)
		if err != nil {
			p.Add(w+".data", key, "is not a valid template: %v", err)
			continue
		}
		t.texts[key] = v.Value
		t.tmpls[key] = parsed
		t.Keys = append(t.Keys, key)
	}
	sort.Strings(t.Keys)
	return t
}

// reservedPrefix is coffer's own label and annotation domain.
const reservedPrefix = Domain + "/"

func (p *parser) stringMap(f map[string]*yaml.Node, field, where string, labels bool) map[string]string {
	n, ok := f[field]
	if !ok {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.Add(where, field, "must be a mapping of names to values, found a %s at line %d", yamlcheck.KindName(n), n.Line)
		return nil
	}
	if !p.Within(n, where, field, MaxMetadataEntries, "keep the "+field+" the Secret's readers need") {
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		w := where + "." + field
		if v.Kind != yaml.ScalarNode {
			p.Add(w, k.Value, "must be a single value, found a %s at line %d", yamlcheck.KindName(v), v.Line)
			continue
		}
		switch {
		case strings.HasPrefix(k.Value, reservedPrefix):
			p.Add(w, k.Value, "is in coffer's own domain %s, which coffer manages; use another name", Domain)
			continue
		case labels && k.Value == LabelManagedBy:
			p.Add(w, k.Value, "is set by coffer (%s=%s); remove it", LabelManagedBy, ManagedByValue)
			continue
		}
		if msgs := validation.IsQualifiedName(k.Value); len(msgs) > 0 {
			p.Add(w, k.Value, "is not a valid name: %s", strings.Join(msgs, "; "))
			continue
		}
		if labels {
			if msgs := validation.IsValidLabelValue(v.Value); len(msgs) > 0 {
				p.Add(w, k.Value, "value %q is not a valid label value: %s", v.Value, strings.Join(msgs, "; "))
				continue
			}
		}
		if _, dup := out[k.Value]; dup {
			p.Add(w, k.Value, "is set twice (line %d); keep one", k.Line)
			continue
		}
		out[k.Value] = v.Value
	}
	return out
}

// checkSecretKey says why k cannot be a Secret data key ("" if it can).
func checkSecretKey(k string) string {
	if msgs := validation.IsConfigMapKey(k); len(msgs) > 0 {
		return "is not a valid Secret key: " + strings.Join(msgs, "; ")
	}
	return ""
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}
