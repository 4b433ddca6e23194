package esoconvert

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/provider/spc"
	"github.com/coffer-csi/coffer/secretsync"
)

// class is the SecretProviderClass one ExternalSecret becomes.
type class struct {
	ref                 ref
	name, namespace     string
	labels, annotations map[string]string
	// From the store.
	objectType               spc.ObjectType
	region, role, externalID string
	prefix                   string
	objects                  *objects
	entry                    entryOut
}

// entryOut is the syncSecrets entry, in the order the documentation lists
// its fields.
type entryOut struct {
	SecretName         string            `yaml:"secretName"`
	Type               string            `yaml:"type,omitempty"`
	Labels             map[string]string `yaml:"labels,omitempty"`
	Annotations        map[string]string `yaml:"annotations,omitempty"`
	Immutable          bool              `yaml:"immutable,omitempty"`
	CreationPolicy     string            `yaml:"creationPolicy,omitempty"`
	DeletionPolicy     string            `yaml:"deletionPolicy,omitempty"`
	RefreshInterval    string            `yaml:"refreshInterval,omitempty"`
	ServiceAccountName string            `yaml:"serviceAccountName,omitempty"`
	Data               []dataOut         `yaml:"data,omitempty"`
	DataFrom           []dataFromOut     `yaml:"dataFrom,omitempty"`
	Template           *templateOut      `yaml:"template,omitempty"`
}

type dataOut struct {
	Key        string `yaml:"key"`
	ObjectName string `yaml:"objectName"`
	Decoding   string `yaml:"decoding,omitempty"`
	source     source
}

type dataFromOut struct {
	Extract  string `yaml:"extract"`
	Decoding string `yaml:"decoding,omitempty"`
	source   source
}

// source is the file a data or dataFrom entry reads: an object's own, or
// one of its jmesPath entries'. It is named when the class is written,
// once every object is known.
type source struct {
	object *objectOut
	jmes   string
}

func (s source) name() string {
	if s.jmes != "" {
		return s.jmes
	}
	return s.object.ref()
}

type templateOut struct {
	Data        map[string]string `yaml:"data"`
	MergePolicy string            `yaml:"mergePolicy,omitempty"`
}

// objectOut is one entry of objects.
type objectOut struct {
	ObjectName         string    `yaml:"objectName"`
	ObjectType         string    `yaml:"objectType"`
	ObjectAlias        string    `yaml:"objectAlias,omitempty"`
	ObjectVersion      string    `yaml:"objectVersion,omitempty"`
	ObjectVersionLabel string    `yaml:"objectVersionLabel,omitempty"`
	JMESPath           []jmesOut `yaml:"jmesPath,omitempty"`
}

type jmesOut struct {
	Path        string `yaml:"path"`
	ObjectAlias string `yaml:"objectAlias"`
}

// selector picks a version of an object.
type selector struct{ version, label string }

// objects are a class's objects: one per name and version, each file
// name used once.
type objects struct {
	list  []*objectOut
	byKey map[string]*objectOut
	// files are the file names taken, by objects and jmesPath entries.
	files map[string]bool
}

func newObjects() *objects {
	return &objects{byKey: map[string]*objectOut{}, files: map[string]bool{}}
}

// get returns the object of name at sel, adding it when new. An object
// read at a version gets an alias naming it, so that two versions of one
// name are two files.
func (os *objects) get(t spc.ObjectType, name string, sel selector) *objectOut {
	key := strings.Join([]string{string(t), name, sel.version, sel.label}, "\x00")
	if o, ok := os.byKey[key]; ok {
		return o
	}
	o := &objectOut{ObjectName: name, ObjectType: string(t), ObjectVersion: sel.version, ObjectVersionLabel: sel.label}
	file, _ := spc.FilePath(name, "_") // a bad name is reported by validation
	if suffix := sel.label + sel.version; suffix != "" || os.files[file] {
		if suffix == "" {
			suffix = "file"
		}
		o.ObjectAlias = os.free(file + "-" + suffix)
		file = o.ObjectAlias
	}
	os.files[file] = true
	os.list = append(os.list, o)
	os.byKey[key] = o
	return o
}

// jmes returns the file of o's jmesPath entry for expr, adding it when
// new, named after the Secret key it fills when that name is free.
func (os *objects) jmes(o *objectOut, expr, secretKey string) string {
	for _, e := range o.JMESPath {
		if e.Path == expr {
			return e.ObjectAlias
		}
	}
	alias := ""
	if _, err := spc.FilePath(secretKey, "_"); secretKey != "" && err == nil && !os.files[secretKey] && !strings.Contains(secretKey, "/") {
		alias = secretKey
	} else {
		alias = os.free(o.ref() + "-" + fmt.Sprint(len(o.JMESPath)))
	}
	os.files[alias] = true
	o.JMESPath = append(o.JMESPath, jmesOut{Path: expr, ObjectAlias: alias})
	return alias
}

// disambiguate gives an alias to an object read without a version when
// the class reads its name at another version too: the name as written
// would then name several files.
func (os *objects) disambiguate() {
	count := map[string]int{}
	for _, o := range os.list {
		count[o.ObjectName]++
	}
	for _, o := range os.list {
		if o.ObjectAlias == "" && count[o.ObjectName] > 1 {
			file, _ := spc.FilePath(o.ObjectName, "_")
			delete(os.files, file)
			o.ObjectAlias = os.free(file + "-current")
			os.files[o.ObjectAlias] = true
		}
	}
}

// free returns name, or name-2, name-3 ... whichever is not taken.
func (os *objects) free(name string) string {
	name = strings.ReplaceAll(name, "/", "_")
	candidate := name
	for i := 2; os.files[candidate]; i++ {
		candidate = fmt.Sprintf("%s-%d", name, i)
	}
	return candidate
}

// ref is how syncSecrets names the object's file: its alias, or its name
// as written.
func (o *objectOut) ref() string {
	if o.ObjectAlias != "" {
		return o.ObjectAlias
	}
	return o.ObjectName
}

// manifest is the SecretProviderClass as written.
type manifest struct {
	APIVersion string       `yaml:"apiVersion"`
	Kind       string       `yaml:"kind"`
	Metadata   metadataOut  `yaml:"metadata"`
	Spec       manifestSpec `yaml:"spec"`
}

type metadataOut struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

type manifestSpec struct {
	Provider   string     `yaml:"provider"`
	Parameters parameters `yaml:"parameters"`
}

// parameters in the order a reader wants them: where, as whom, what.
type parameters struct {
	Region               string `yaml:"region,omitempty"`
	AssumeRoleARN        string `yaml:"assumeRoleArn,omitempty"`
	AssumeRoleExternalID string `yaml:"assumeRoleExternalId,omitempty"`
	Objects              string `yaml:"objects"`
	SyncSecrets          string `yaml:"syncSecrets"`
}

// render writes the class, and checks it as coffer validate would: the
// problems it returns, if any, are coffer's messages.
func (cls *class) render() ([]byte, []string) {
	cls.objects.disambiguate()
	for i := range cls.entry.Data {
		cls.entry.Data[i].ObjectName = cls.entry.Data[i].source.name()
	}
	for i := range cls.entry.DataFrom {
		cls.entry.DataFrom[i].Extract = cls.entry.DataFrom[i].source.name()
	}
	objs := make([]objectOut, len(cls.objects.list))
	for i, o := range cls.objects.list {
		objs[i] = *o
	}
	p := parameters{
		Region: cls.region, AssumeRoleARN: cls.role, AssumeRoleExternalID: cls.externalID,
		Objects:     encode(objs, false),
		SyncSecrets: encode([]entryOut{cls.entry}, true),
	}
	attrs := map[string]string{spc.KeyObjects: p.Objects, spc.KeySyncSecrets: p.SyncSecrets, spc.AttrSPCName: cls.name}
	for k, v := range map[string]string{spc.KeyRegion: p.Region, spc.KeyAssumeRoleARN: p.AssumeRoleARN, spc.KeyAssumeRoleExternalID: p.AssumeRoleExternalID} {
		if v != "" {
			attrs[k] = v
		}
	}
	if problems := validate(attrs); len(problems) > 0 {
		return nil, problems
	}
	m := manifest{
		APIVersion: "secrets-store.csi.x-k8s.io/v1",
		Kind:       "SecretProviderClass",
		Metadata:   metadataOut{Name: cls.name, Namespace: cls.namespace, Labels: cls.labels, Annotations: cls.annotations},
		Spec:       manifestSpec{Provider: "aws", Parameters: p},
	}
	return []byte(encode(m, false)), nil
}

// validate parses the class as a mount and coffer-controller sync do.
func validate(attrs map[string]string) []string {
	cfg, err := spc.Parse(attrs, spc.Options{})
	if err == nil {
		_, err = secretsync.Parse(attrs[spc.KeySyncSecrets], cfg)
	}
	var verr *spc.ValidationError
	switch {
	case errors.As(err, &verr):
		out := make([]string, len(verr.Problems))
		for i, p := range verr.Problems {
			out[i] = p.String()
		}
		return out
	case err != nil:
		return []string{err.Error()}
	}
	return nil
}

// encode writes v as YAML, indented by two; flowData writes each data and
// dataFrom item on one line ({key: address, objectName: dev/slackurl}).
func encode(v any, flowData bool) string {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		panic(err) // plain structs of strings always encode
	}
	if flowData {
		flowItems(&n)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		panic(err)
	}
	return b.String()
}

// flowItems sets the items of every data and dataFrom list to flow style.
func flowItems(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := n.Content[i].Value, n.Content[i+1]; (k == "data" || k == "dataFrom") && v.Kind == yaml.SequenceNode {
				for _, item := range v.Content {
					item.Style = yaml.FlowStyle
				}
			}
		}
	}
	for _, c := range n.Content {
		flowItems(c)
	}
}
