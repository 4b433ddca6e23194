package esoconvert

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/tmpl"
	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/secretsync"
)

var (
	esKeys        = []string{"apiVersion", "kind", "metadata", "spec", "status"}
	metadataKeys  = []string{"name", "namespace", "labels", "annotations", "ownerReferences", "finalizers", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink", "generateName", "deletionTimestamp", "deletionGracePeriodSeconds"}
	esSpecKeys    = []string{"secretStoreRef", "target", "refreshPolicy", "refreshInterval", "syncWindows", "data", "dataFrom"}
	storeRefKeys  = []string{"name", "kind"}
	targetKeys    = []string{"name", "creationPolicy", "deletionPolicy", "template", "manifest", "immutable"}
	templateKeys  = []string{"type", "engineVersion", "metadata", "mergePolicy", "data", "templateFrom"}
	tmplMetaKeys  = []string{"labels", "annotations", "finalizers"}
	dataKeys      = []string{"secretKey", "remoteRef", "sourceRef"}
	remoteRefKeys = []string{"key", "metadataPolicy", "property", "version", "conversionStrategy", "decodingStrategy", "nullBytePolicy"}
	dataFromKeys  = []string{"extract", "find", "rewrite", "sourceRef"}
)

// metadata reads a manifest's metadata into cls (nil: a store's, whose
// labels and annotations describe the store only).
func (c *converter) metadata(r ref, n *yaml.Node, cls *class) {
	if n == nil {
		return
	}
	md := c.fields(r, n, "metadata", metadataKeys...)
	for _, k := range []string{"ownerReferences", "finalizers"} {
		if _, ok := md[k]; ok && cls != nil {
			c.drop(r, "metadata."+k, "metadata.other", "")
		}
	}
	if cls == nil {
		return
	}
	if l, ok := md["labels"]; ok {
		cls.labels = c.stringMap(r, l, "metadata.labels")
	}
	if a, ok := md["annotations"]; ok {
		cls.annotations = c.stringMap(r, a, "metadata.annotations")
		// kubectl's record of the ExternalSecret is not the class's.
		delete(cls.annotations, "kubectl.kubernetes.io/last-applied-configuration")
	}
}

// externalSecret converts one ExternalSecret into a class, or gives nil
// when nothing of it converts (its lines say why).
func (c *converter) externalSecret(d *yaml.Node) *class {
	kind := scalarField(d, "kind")
	r := ref{kind: kind, name: nameOf(d)}
	if kind == "ClusterExternalSecret" {
		c.drop(r, "kind", "kind-cluster", "")
		return nil
	}
	top := c.fields(r, d, "", esKeys...)
	if v := c.scalar(r, top, "apiVersion", ""); v != esoGroup+"/v1" && v != esoGroup+"/v1beta1" {
		c.drop(r, "apiVersion", "apiVersion-other", "")
		return nil
	}
	if r.name == "" {
		c.drop(r, "metadata.name", "malformed", "the ExternalSecret has no name")
		return nil
	}
	cls := &class{ref: r, name: r.name, namespace: c.namespaceOf(d), objects: newObjects()}
	c.metadata(r, top["metadata"], cls)
	specNode, ok := top["spec"]
	if !ok {
		c.drop(r, "spec", "malformed", "the ExternalSecret has no spec")
		return nil
	}
	spec := c.fields(r, specNode, "spec", esSpecKeys...)
	e := &cls.entry
	e.SecretName = r.name

	if !c.storeOf(cls, spec) {
		return nil
	}
	templated := false
	if tn, ok := spec["target"]; ok {
		if !c.target(cls, tn) {
			return nil
		}
		templated = field(tn, "template") != nil
	}
	if !templated {
		c.secretMetadata(cls)
	}
	c.refresh(cls, spec)
	if _, ok := spec["syncWindows"]; ok {
		c.drop(r, "spec.syncWindows", "spec.syncWindows", "")
	}
	if n, ok := spec["data"]; ok {
		if !c.within(r, n, "spec.data", maxData) {
			return nil
		}
		for i, item := range c.list(r, n, "spec.data") {
			c.dataItem(cls, item, fmt.Sprintf("spec.data[%d]", i))
		}
	}
	if n, ok := spec["dataFrom"]; ok {
		if !c.within(r, n, "spec.dataFrom", maxDataFrom) {
			return nil
		}
		for i, item := range c.list(r, n, "spec.dataFrom") {
			c.dataFromItem(cls, item, fmt.Sprintf("spec.dataFrom[%d]", i))
		}
	}
	if len(e.Data) == 0 && len(e.DataFrom) == 0 {
		c.drop(r, "spec", "invalid", "no data or dataFrom entry converted, so there is nothing to sync")
		return nil
	}
	return cls
}

// secretMetadata gives the Secret the ExternalSecret's own labels and
// annotations, as ESO does when the ExternalSecret has no template, but
// for those coffer sets itself (a NOTE line each): its domain's, and the
// label app.kubernetes.io/managed-by.
func (c *converter) secretMetadata(cls *class) {
	e := &cls.entry
	copyOf := func(from map[string]string, field string, labels bool) map[string]string {
		var out map[string]string
		for _, k := range slices.Sorted(maps.Keys(from)) {
			if strings.HasPrefix(k, secretsync.Domain+"/") || (labels && k == secretsync.LabelManagedBy) {
				c.note(cls.ref, field+"."+k, "metadata.meta-coffer")
				continue
			}
			if out == nil {
				out = map[string]string{}
			}
			out[k] = from[k]
		}
		return out
	}
	e.Labels = copyOf(cls.labels, "metadata.labels", true)
	e.Annotations = copyOf(cls.annotations, "metadata.annotations", false)
}

// storeOf resolves spec.secretStoreRef and copies the store's fields into
// cls; false when the ExternalSecret cannot be converted at all.
func (c *converter) storeOf(cls *class, spec map[string]*yaml.Node) bool {
	r := cls.ref
	key := storeKey{kind: "SecretStore"}
	if n, ok := spec["secretStoreRef"]; ok {
		f := c.fields(r, n, "spec.secretStoreRef", storeRefKeys...)
		key.name = c.scalar(r, f, "name", "spec.secretStoreRef")
		if k := c.scalar(r, f, "kind", "spec.secretStoreRef"); k != "" {
			key.kind = k
		}
	}
	switch key.kind {
	case "SecretStore":
		key.namespace = cls.namespace
	case "ClusterSecretStore":
	default:
		c.drop(r, "spec.secretStoreRef.kind", "malformed", "want SecretStore or ClusterSecretStore")
		return false
	}
	s, found := c.store(key)
	switch {
	case !found:
		c.drop(r, "spec.secretStoreRef", "store-missing", fmt.Sprintf("%s %q", key.kind, key.name))
		// Without the store: Secrets Manager, as most stores read, and
		// no identity unless the command line names one.
		cls.objectType = spc.SecretsManager
		cls.entry.ServiceAccountName = c.opts.ServiceAccount
		return true
	case s == nil:
		return false
	}
	cls.objectType = s.objectType
	cls.region, cls.role, cls.externalID, cls.prefix = s.region, s.role, s.externalID, s.prefix
	cls.entry.ServiceAccountName = c.identity(r, s, ref{kind: key.kind, name: key.name}, cls.namespace)
	return true
}

// target reads spec.target; false when the ExternalSecret writes no
// Secret (target.manifest).
func (c *converter) target(cls *class, n *yaml.Node) bool {
	r, e := cls.ref, &cls.entry
	const path = "spec.target"
	t := c.fields(r, n, path, targetKeys...)
	if _, ok := t["manifest"]; ok {
		c.drop(r, path+".manifest", "spec.target.manifest", "")
		return false
	}
	if name := c.scalar(r, t, "name", path); name != "" {
		e.SecretName = name
	}
	switch v := c.scalar(r, t, "creationPolicy", path); v {
	case "", "Owner", "Orphan":
		e.CreationPolicy = v
	case "Merge":
		e.CreationPolicy = v
		c.note(r, path+".creationPolicy", "creationPolicy-merge")
	case "None", "CreateOrMerge":
		c.drop(r, path+".creationPolicy", "creationPolicy-none", "")
	default:
		c.drop(r, path+".creationPolicy", "malformed", "want Owner, Orphan, Merge, None or CreateOrMerge")
	}
	switch v := c.scalar(r, t, "deletionPolicy", path); v {
	case "", "Retain":
		e.DeletionPolicy = v
	case "Delete":
		if e.CreationPolicy == "Merge" {
			c.drop(r, path+".deletionPolicy", "deletionPolicy-merge", "")
		} else {
			e.DeletionPolicy = v
		}
	case "Merge":
		c.drop(r, path+".deletionPolicy", "deletionPolicy-merge", "")
	default:
		c.drop(r, path+".deletionPolicy", "malformed", "want Retain, Delete or Merge")
	}
	if c.boolean(r, t, "immutable", path) {
		if e.CreationPolicy == "Merge" {
			c.drop(r, path+".immutable", "immutable-merge", "")
		} else {
			e.Immutable = true
		}
	}
	if tn, ok := t["template"]; ok {
		c.template(cls, tn)
	}
	return true
}

func (c *converter) template(cls *class, n *yaml.Node) {
	r, e := cls.ref, &cls.entry
	const path = "spec.target.template"
	t := c.fields(r, n, path, templateKeys...)
	e.Type = c.scalar(r, t, "type", path)
	if mn, ok := t["metadata"]; ok {
		md := c.fields(r, mn, path+".metadata", tmplMetaKeys...)
		if l, ok := md["labels"]; ok {
			e.Labels = c.stringMap(r, l, path+".metadata.labels")
		}
		if a, ok := md["annotations"]; ok {
			e.Annotations = c.stringMap(r, a, path+".metadata.annotations")
		}
		if _, ok := md["finalizers"]; ok {
			c.drop(r, path+".metadata.finalizers", "template.finalizers", "")
		}
	}
	if _, ok := t["templateFrom"]; ok {
		c.drop(r, path+".templateFrom", "template.templateFrom", "")
	}
	engine := c.scalar(r, t, "engineVersion", path)
	switch engine {
	case "", "v2":
	case "v1":
		if _, ok := t["data"]; ok {
			c.drop(r, path+".engineVersion", "template.engineVersion-v1", "")
		}
	default:
		c.drop(r, path+".engineVersion", "malformed", "want v1 or v2")
	}
	merge := c.scalar(r, t, "mergePolicy", path)
	switch merge {
	case "", "Replace", "Merge":
	default:
		c.drop(r, path+".mergePolicy", "malformed", "want Replace or Merge")
		merge = ""
	}
	dn, ok := t["data"]
	if !ok || engine == "v1" {
		return
	}
	data := c.stringMap(r, dn, path+".data")
	out := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if _, err := tmpl.Parse(data[k]); err != nil {
			c.drop(r, path+".data."+k, "template.data-function", err.Error())
			continue
		}
		out[k] = data[k]
	}
	if len(out) > 0 {
		e.Template = &templateOut{Data: out, MergePolicy: merge}
	}
}

// refresh reads refreshInterval and refreshPolicy.
func (c *converter) refresh(cls *class, spec map[string]*yaml.Node) {
	r, e := cls.ref, &cls.entry
	interval := c.scalar(r, spec, "refreshInterval", "spec")
	if interval != "" {
		d, err := time.ParseDuration(interval)
		switch {
		case err != nil || d < 0:
			c.drop(r, "spec.refreshInterval", "malformed", "want a duration such as 1h")
			interval = ""
		case d == 0:
			c.note(r, "spec.refreshInterval", "spec.refreshInterval-zero")
		case d < time.Second:
			c.drop(r, "spec.refreshInterval", "spec.refreshInterval-short", "")
			interval = ""
		}
	}
	switch v := c.scalar(r, spec, "refreshPolicy", "spec"); v {
	case "", "Periodic":
	case "OnChange":
		c.note(r, "spec.refreshPolicy", "spec.refreshPolicy-onchange")
		interval = "0"
	case "CreatedOnce":
		c.drop(r, "spec.refreshPolicy", "spec.refreshPolicy-once", "")
	default:
		c.drop(r, "spec.refreshPolicy", "malformed", "want Periodic, OnChange or CreatedOnce")
	}
	e.RefreshInterval = interval
}

// remote is a remoteRef (or a dataFrom extract) once read: the file that
// holds the value, and how it is decoded.
type remote struct {
	source   source
	decoding string
}

// remoteRef reads a remoteRef at path into an object (and a jmesPath
// entry for a property); false when it cannot be converted. secretKey
// names a data entry's key (a jmesPath entry's preferred file name).
func (c *converter) remoteRef(cls *class, n *yaml.Node, path, secretKey string) (remote, bool) {
	r := cls.ref
	f := c.fields(r, n, path, remoteRefKeys...)
	if f == nil {
		return remote{}, false
	}
	key := c.scalar(r, f, "key", path)
	if key == "" {
		c.drop(r, path+".key", "malformed", "the key is required")
		return remote{}, false
	}
	ok := true
	switch c.scalar(r, f, "metadataPolicy", path) {
	case "", "None":
	case "Fetch":
		c.drop(r, path+".metadataPolicy", "metadataPolicy-fetch", "")
		ok = false
	default:
		c.drop(r, path+".metadataPolicy", "malformed", "want None or Fetch")
		ok = false
	}
	switch c.scalar(r, f, "conversionStrategy", path) {
	case "", "Default":
	case "Unicode":
		c.drop(r, path+".conversionStrategy", "conversionStrategy-unicode", "")
	default:
		c.drop(r, path+".conversionStrategy", "malformed", "want Default or Unicode")
	}
	switch c.scalar(r, f, "nullBytePolicy", path) {
	case "", "Ignore":
	case "Fail":
		c.drop(r, path+".nullBytePolicy", "nullBytePolicy-fail", "")
	default:
		c.drop(r, path+".nullBytePolicy", "malformed", "want Ignore or Fail")
	}
	var out remote
	switch v := c.scalar(r, f, "decodingStrategy", path); v {
	case "", "None":
	case "Base64":
		out.decoding = "base64"
	case "Base64URL":
		out.decoding = "base64url"
	case "Auto":
		c.drop(r, path+".decodingStrategy", "decodingStrategy-auto", "")
	default:
		c.drop(r, path+".decodingStrategy", "malformed", "want None, Base64, Base64URL or Auto")
	}
	var expr string
	if p := c.scalar(r, f, "property", path); p != "" {
		var numeric bool
		var err error
		if expr, numeric, err = jmesPath(p); err != nil {
			c.drop(r, path+".property", "remoteRef.property-syntax", err.Error())
			return remote{}, false
		}
		if numeric {
			c.note(r, path+".property", "remoteRef.property")
		}
	}
	if !ok {
		return remote{}, false
	}
	name := cls.prefix + key
	t := objectType(cls.objectType, name)
	o := cls.objects.get(t, name, version(t, c.scalar(r, f, "version", path)))
	out.source = source{object: o}
	if expr != "" {
		out.source.jmes = cls.objects.jmes(o, expr, secretKey)
	}
	return out, true
}

// objectType is the service an object is read from: its ARN's, else the
// store's.
func objectType(store spc.ObjectType, name string) spc.ObjectType {
	if a, err := spc.ParseARN(name); err == nil {
		switch a.Service {
		case "ssm":
			return spc.ParameterStore
		case "secretsmanager":
			return spc.SecretsManager
		}
	}
	return store
}

// version maps remoteRef.version to the object's version selector, as
// ESO's AWS provider reads it for the object's service.
func version(t spc.ObjectType, v string) selector {
	switch {
	case v == "":
		return selector{}
	case t == spc.ParameterStore:
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			return selector{version: v}
		}
		return selector{label: v}
	case v == "AWSCURRENT":
		return selector{} // Secrets Manager's default, as the AWS provider's
	}
	if id, ok := strings.CutPrefix(v, "uuid/"); ok {
		return selector{version: id}
	}
	return selector{label: v}
}

func (c *converter) dataItem(cls *class, n *yaml.Node, path string) {
	r := cls.ref
	f := c.fields(r, n, path, dataKeys...)
	if f == nil {
		return
	}
	if _, ok := f["sourceRef"]; ok {
		c.drop(r, path+".sourceRef", "data.sourceRef", "")
		return
	}
	key := c.scalar(r, f, "secretKey", path)
	if key == "" {
		c.drop(r, path+".secretKey", "malformed", "the secretKey is required")
		return
	}
	rn, ok := f["remoteRef"]
	if !ok {
		c.drop(r, path+".remoteRef", "malformed", "the remoteRef is required")
		return
	}
	rem, ok := c.remoteRef(cls, rn, path+".remoteRef", key)
	if !ok {
		return
	}
	cls.entry.Data = append(cls.entry.Data, dataOut{Key: key, Decoding: rem.decoding, source: rem.source})
}

func (c *converter) dataFromItem(cls *class, n *yaml.Node, path string) {
	r := cls.ref
	f := c.fields(r, n, path, dataFromKeys...)
	if f == nil {
		return
	}
	if _, ok := f["sourceRef"]; ok {
		c.drop(r, path+".sourceRef", "data.sourceRef", "")
		return
	}
	if _, ok := f["find"]; ok {
		c.drop(r, path+".find", "dataFrom.find", "")
	}
	if _, ok := f["rewrite"]; ok {
		c.drop(r, path+".rewrite", "dataFrom.rewrite", "")
	}
	en, ok := f["extract"]
	if !ok {
		return
	}
	rem, ok := c.remoteRef(cls, en, path+".extract", "")
	if !ok {
		return
	}
	cls.entry.DataFrom = append(cls.entry.DataFrom, dataFromOut{Decoding: rem.decoding, source: rem.source})
}
