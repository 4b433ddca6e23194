package spc

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/coffer-csi/coffer/internal/jmes"
	"github.com/coffer-csi/coffer/internal/yamlcheck"
)

// Object is one validated entry of the objects list.
type Object struct {
	// Index is the entry's position in the objects list.
	Index int
	// Name is objectName as written: a name or an ARN.
	Name         string
	Type         ObjectType
	Alias        string
	Version      string
	VersionLabel string
	// Mode is the file mode of the object's own file.
	Mode fs.FileMode
	// Path is the object's file path relative to the mount (the directory of
	// its files when WritesDirectory).
	Path string
	// ParameterPath selects every parameter under a Parameter Store path
	// (coffer extension), Recursive the whole tree.
	ParameterPath string
	Recursive     bool
	// Filters select Secrets Manager secrets (coffer extension).
	Filters []Filter
	// MaxMembers bounds what ParameterPath or Filters may select.
	MaxMembers int
	// ExpandJSON writes one file per top-level key of a JSON value, under
	// Path, instead of the value itself (coffer extension).
	ExpandJSON bool
	// Decoding is applied to the value (or each key or member) before it is
	// written: "", "base64" or "base64url".
	Decoding string
	JMESPath []*JMESPathEntry
	// Failover says what to read in the failover region; nil without a
	// failoverRegion.
	Failover *Target
	// Optional leaves the object's files out of a mount when AWS says it
	// does not exist (the object, its version, or anything its selection
	// would select) instead of failing the mount (coffer extension).
	Optional bool
	// NoFile (writeFile: false) keeps the object's own file out of a mount;
	// its value still serves templates, jmesPath entries and Secret sync
	// (coffer extension).
	NoFile bool
}

// JMESPathEntry extracts one value of a JSON object into its own file.
type JMESPathEntry struct {
	Expression string
	Alias      string
	Path       string
	Mode       fs.FileMode
	Compiled   *jmes.Expr
	// Decoding is applied to the extracted value.
	Decoding string
	// NoFile (writeFile: false) keeps the entry's file out of a mount; its
	// value still serves templates and Secret sync.
	NoFile bool
}

// Target is what to fetch from one region.
type Target struct {
	Name, Version, VersionLabel string
}

// Primary is what to fetch from the primary region.
func (o *Object) Primary() Target {
	return Target{Name: o.Name, Version: o.Version, VersionLabel: o.VersionLabel}
}

// Describe names the object in messages: its position and name.
func (o *Object) Describe() string {
	return describe(o.Index, o.Name)
}

func describe(i int, name string) string {
	return fmt.Sprintf("objects[%d] (%s)", i, yamlcheck.Name(name))
}

// Keys of an object entry, of a jmesPath entry and of a failoverObject.
var (
	objectKeys = []string{"objectName", "objectType", "objectAlias", "objectVersion", "objectVersionLabel", "filePermission", "jmesPath", "failoverObject",
		keyPath, keyRecursive, keyFilters, keyMaxMembers, keyExpandJSON, keyDecoding, keyOptional, keyWriteFile}
	jmesKeys     = []string{"path", "objectAlias", "filePermission", keyDecoding, keyWriteFile}
	failoverKeys = []string{"objectName", "objectVersion", "objectVersionLabel"}
)

type objectParser struct {
	cfg         *Config
	translation string
	defaultMode fs.FileMode
	ps          *yamlcheck.Checker
	// maxObjects bounds the entries of the objects list.
	maxObjects int
	// jmesEntries counts the jmesPath entries of all objects.
	jmesEntries int
}

func (p *objectParser) parse(raw string) []*Object {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &doc); err != nil {
		p.ps.Add("parameters", KeyObjects, "is not valid YAML: %v", err)
		return nil
	}
	if len(doc.Content) == 0 {
		p.ps.Add("parameters", KeyObjects, "is empty; list at least one object")
		return nil
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		p.ps.Add("parameters", KeyObjects, "must be a YAML list of objects (each item starting with \"- objectName: ...\"), found a %s at line %d", yamlcheck.KindName(list), list.Line)
		return nil
	}
	if len(list.Content) == 0 {
		p.ps.Add("parameters", KeyObjects, "is an empty list; list at least one object")
		return nil
	}
	if len(list.Content) > p.maxObjects {
		p.ps.Add("parameters", KeyObjects, "lists %d objects, over the limit of %d per SecretProviderClass (--max-objects); split them across several SecretProviderClasses", len(list.Content), p.maxObjects)
		return nil
	}
	objects := make([]*Object, 0, len(list.Content))
	for i, item := range list.Content {
		if o := p.parseObject(i, item); o != nil {
			objects = append(objects, o)
		}
	}
	return objects
}

func (p *objectParser) parseObject(i int, item *yaml.Node) *Object {
	where := fmt.Sprintf("objects[%d]", i)
	if item.Kind != yaml.MappingNode {
		p.ps.Add(where, "", "must be a mapping with objectName and objectType, found a %s at line %d", yamlcheck.KindName(item), item.Line)
		return nil
	}
	before := len(p.ps.Problems)
	// Read objectName first, so that every problem of the entry, its keys'
	// included, names the object.
	quiet := &yamlcheck.Checker{}
	if name := quiet.Scalar(quiet.Fields(item, objectKeys, where), "objectName", where); name != "" {
		where = describe(i, name)
	}
	f := p.ps.Fields(item, objectKeys, where)
	o := &Object{Index: i, Name: p.ps.Scalar(f, "objectName", where)}
	o.Alias = p.ps.Scalar(f, "objectAlias", where)
	o.Decoding = p.decoding(f, where)
	if o.Name == "" {
		p.parseBulk(o, f, p.ps.Scalar(f, "objectType", where), where)
		if o.Bulk() {
			where = describe(i, o.Name)
		}
	} else {
		for _, k := range []string{keyPath, keyFilters, keyRecursive, keyMaxMembers} {
			if _, ok := f[k]; ok {
				p.ps.Add(where, k, "cannot be used with objectName; %s select many entries and take no objectName", map[bool]string{true: "path and recursive", false: "filters"}[k != keyFilters])
			}
		}
		o.Type = p.objectType(o.Name, p.ps.Scalar(f, "objectType", where), p.cfg.Region, where)
		if v := p.ps.Scalar(f, keyExpandJSON, where); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				p.ps.Add(where, keyExpandJSON, "%q is not a boolean; use true to write one file per top-level key of the JSON value", v)
			}
			o.ExpandJSON = b
		}
	}
	o.Version = p.ps.Scalar(f, "objectVersion", where)
	o.VersionLabel = p.ps.Scalar(f, "objectVersionLabel", where)
	p.checkSelectors(o.Type, o.Version, o.VersionLabel, where)
	o.Mode = p.mode(p.ps.Scalar(f, "filePermission", where), p.defaultMode, where, "filePermission")
	o.Optional = p.boolean(f, keyOptional, where, false, "true leaves the object's files out of the mount while AWS says it does not exist")
	o.NoFile = !p.boolean(f, keyWriteFile, where, true, "false keeps the object's own file out of the mount; templates and jmesPath entries still read it")

	name := o.Alias
	if name == "" && !o.Bulk() {
		name = o.Name
	}
	var err error
	if o.Path, err = FilePath(name, p.translation); err != nil && name != "" {
		field := "objectName"
		if o.Alias != "" {
			field = "objectAlias"
		}
		p.ps.Add(where, field, "%v; choose an objectAlias that is a plain relative file name", err)
	}

	if n, ok := f["jmesPath"]; ok {
		o.JMESPath = p.jmesPath(n, where, o.Mode)
	}
	o.Failover = p.failover(o, f, where)
	if len(p.ps.Problems) > before {
		return nil
	}
	return o
}

// objectType works out the service from objectType and an ARN name, which
// must agree; an ARN's region must be the region it is read from.
func (p *objectParser) objectType(name, declared, region, where string) ObjectType {
	var t ObjectType
	switch strings.ToLower(declared) {
	case "":
	case string(SecretsManager):
		t = SecretsManager
	case string(ParameterStore):
		t = ParameterStore
	case "ssm", "parameterstore", "ssm-parameter", "parameter":
		p.ps.Add(where, "objectType", "%q is not a valid objectType; for Parameter Store use \"ssmparameter\"", declared)
		return ""
	default:
		p.ps.Add(where, "objectType", "%q is not a valid objectType; use \"secretsmanager\" or \"ssmparameter\"", declared)
		return ""
	}
	if name == "" {
		return t
	}
	if !strings.HasPrefix(name, "arn:") {
		if t == "" {
			p.ps.Add(where, "objectType", "is required when objectName is not an ARN; set objectType: secretsmanager or objectType: ssmparameter")
			return ""
		}
		if err := checkName(t, name); err != nil {
			p.ps.Add(where, "objectName", "%v", err)
		}
		return t
	}
	arnType := p.checkARN(name, region, where, "objectName", KeyRegion)
	if arnType == "" {
		return ""
	}
	if t != "" && t != arnType {
		p.ps.Add(where, "objectType", "is %q but objectName is a %s ARN; make them agree (or drop objectType: the ARN decides)", declared, arnType.Title())
		return ""
	}
	return arnType
}

// checkARN parses an ARN object name and checks it against the region it is
// read in (when known).
func (p *objectParser) checkARN(name, region, where, field, regionKey string) ObjectType {
	a, err := ParseARN(name)
	if err != nil {
		p.ps.Add(where, field, "%q is not a valid ARN: %v", name, err)
		return ""
	}
	t, err := typeOfARN(a)
	if err != nil {
		p.ps.Add(where, field, "%v", err)
		return ""
	}
	if region != "" && a.Region != region {
		p.ps.Add(where, field, "the ARN is in region %s but it is read in %s (%s); use the ARN of the copy in %s, or set %s to %s", a.Region, region, regionKey, region, regionKey, a.Region)
	}
	return t
}

func (p *objectParser) checkSelectors(t ObjectType, version, label, where string) {
	if version != "" && t != "" {
		if err := checkVersion(t, version); err != nil {
			p.ps.Add(where, "objectVersion", "%v", err)
		}
	}
	if label != "" {
		if err := checkLabel(label); err != nil {
			p.ps.Add(where, "objectVersionLabel", "%v", err)
		}
	}
	if t == ParameterStore && version != "" && label != "" {
		p.ps.Add(where, "objectVersionLabel", "Parameter Store selects by version or by label, not both; remove objectVersion or objectVersionLabel")
	}
}

// boolean reads an optional boolean field (def when absent); use says what
// true or false does, for the message.
func (p *objectParser) boolean(f map[string]*yaml.Node, key, where string, def bool, use string) bool {
	v := p.ps.Scalar(f, key, where)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.ps.Add(where, key, "%q is not a boolean; %s", v, use)
		return def
	}
	return b
}

// mode parses a filePermission: three or four octal digits, at most 0777.
func (p *objectParser) mode(s string, def fs.FileMode, where, field string) fs.FileMode {
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || len(s) < 3 || len(s) > 4 || n > 0o777 {
		p.ps.Add(where, field, "%q is not a file permission; use four octal digits such as \"0640\" (at most \"0777\")", s)
		return def
	}
	return fs.FileMode(n)
}

func (p *objectParser) jmesPath(n *yaml.Node, where string, parentMode fs.FileMode) []*JMESPathEntry {
	if n.Kind != yaml.SequenceNode {
		p.ps.Add(where, "jmesPath", "must be a list of {path, objectAlias} entries, found a %s at line %d", yamlcheck.KindName(n), n.Line)
		return nil
	}
	if !p.ps.Within(n, where, "jmesPath", MaxJMESPathPerObject, "select fewer values, or read the object whole (expandJSON: true writes a file per key)") {
		return nil
	}
	if before := p.jmesEntries; before+len(n.Content) > MaxJMESPathEntries {
		p.jmesEntries = MaxJMESPathEntries + 1 // reported once
		if before <= MaxJMESPathEntries {
			p.ps.Add(where, "jmesPath", "brings the jmesPath entries of all objects to %d, over the limit of %d per SecretProviderClass; split the objects across several SecretProviderClasses", before+len(n.Content), MaxJMESPathEntries)
		}
		return nil
	}
	p.jmesEntries += len(n.Content)
	entries := make([]*JMESPathEntry, 0, len(n.Content))
	for j, item := range n.Content {
		w := fmt.Sprintf("%s.jmesPath[%d]", where, j)
		if item.Kind != yaml.MappingNode {
			p.ps.Add(w, "", "must be a mapping with path and objectAlias, found a %s at line %d", yamlcheck.KindName(item), item.Line)
			continue
		}
		f := p.ps.Fields(item, jmesKeys, w)
		e := &JMESPathEntry{
			Expression: p.ps.Scalar(f, "path", w),
			Alias:      p.ps.Scalar(f, "objectAlias", w),
			Decoding:   p.decoding(f, w),
		}
		e.Mode = p.mode(p.ps.Scalar(f, "filePermission", w), parentMode, w, "filePermission")
		e.NoFile = !p.boolean(f, keyWriteFile, w, true, "false keeps the entry's file out of the mount; templates still read it")
		if e.Expression == "" {
			p.ps.Add(w, "path", "is required: a JMESPath expression such as \"username\" or \"db.password\"")
		} else if c, err := jmes.Compile(e.Expression); err != nil {
			p.ps.Add(w, "path", "%q is not a valid JMESPath expression: %v", e.Expression, err)
		} else {
			e.Compiled = c
		}
		if e.Alias == "" {
			p.ps.Add(w, "objectAlias", "is required: the file name for the extracted value")
		} else {
			var err error
			if e.Path, err = FilePath(e.Alias, p.translation); err != nil {
				p.ps.Add(w, "objectAlias", "%v; use a plain relative file name", err)
			}
		}
		entries = append(entries, e)
	}
	return entries
}

// failover works out the failover target of an object: the failoverObject
// when given, else the same object (an ARN moved to the failover region).
func (p *objectParser) failover(o *Object, f map[string]*yaml.Node, where string) *Target {
	n, hasObj := f["failoverObject"]
	region := p.cfg.FailoverRegion
	if !hasObj {
		if region == "" {
			return nil
		}
		t := o.Primary()
		if a, err := ParseARN(o.Name); err == nil {
			a.Region = region
			t.Name = a.String()
		}
		return &t
	}
	w := where + ".failoverObject"
	if n.Kind != yaml.MappingNode {
		p.ps.Add(where, "failoverObject", "must be a mapping with objectName (and optionally objectVersion, objectVersionLabel), found a %s at line %d", yamlcheck.KindName(n), n.Line)
		return nil
	}
	ff := p.ps.Fields(n, failoverKeys, w)
	t := &Target{
		Name:         p.ps.Scalar(ff, "objectName", w),
		Version:      p.ps.Scalar(ff, "objectVersion", w),
		VersionLabel: p.ps.Scalar(ff, "objectVersionLabel", w),
	}
	if region == "" {
		p.ps.Add(where, "failoverObject", "needs a failoverRegion parameter to read it from; set failoverRegion or remove failoverObject")
	}
	if o.Alias == "" {
		p.ps.Add(where, "objectAlias", "is required with failoverObject, so the file keeps one name whichever region answers")
	}
	if t.Name == "" {
		p.ps.Add(w, "objectName", "is required: the object to read in the failover region")
	} else if strings.HasPrefix(t.Name, "arn:") {
		if ft := p.checkARN(t.Name, region, w, "objectName", KeyFailoverRegion); ft != "" && o.Type != "" && ft != o.Type {
			p.ps.Add(w, "objectName", "is a %s ARN but the object is %s; both regions must read the same kind of object", ft.Title(), o.Type.Title())
		}
	} else if o.Type != "" {
		if err := checkName(o.Type, t.Name); err != nil {
			p.ps.Add(w, "objectName", "%v", err)
		}
	}
	p.checkSelectors(o.Type, t.Version, t.VersionLabel, w)
	if t.Version != o.Version {
		p.ps.Add(w, "objectVersion", "is %q but the primary objectVersion is %q; they must match so both regions serve the same version", t.Version, o.Version)
	}
	return t
}

// checkPaths reports two files with the same path, and a file that is also
// a directory of another (the driver cannot write "a" beside "a/b").
func checkPaths(objects []*Object, files []*FileTemplate, ps *yamlcheck.Checker) {
	owner := map[string]string{}
	var order []string
	// written is the name as the class wrote it, quoted first when
	// translation changed it.
	add := func(path, written, who string) {
		if prev, dup := owner[path]; dup {
			if written != path {
				ps.Add(who, "objectAlias", "%q becomes the file %q, which %s also writes; give one of them a different objectAlias", written, path, prev)
			} else {
				ps.Add(who, "objectAlias", "writes file %q, which %s also writes; give one of them a different objectAlias", path, prev)
			}
			return
		}
		owner[path] = who
		order = append(order, path)
	}
	dirs := map[string]string{}
	var dirOrder []string
	for _, o := range objects {
		if o.WritesDirectory() {
			if prev, dup := dirs[o.Path]; dup {
				ps.Add(o.Describe(), "objectAlias", "writes into directory %q, as %s does; their files could collide, give each its own objectAlias", o.Path, prev)
			} else {
				dirs[o.Path] = o.Describe()
				dirOrder = append(dirOrder, o.Path)
			}
		} else {
			written := o.Alias
			if written == "" {
				written = o.Name
			}
			add(o.Path, written, o.Describe())
		}
		for j, e := range o.JMESPath {
			add(e.Path, e.Alias, fmt.Sprintf("%s.jmesPath[%d]", o.Describe(), j))
		}
	}
	for _, f := range files {
		if prev, dup := owner[f.Path]; dup {
			ps.Add(f.Describe(), "path", "is also written by %s; give the file another path, or that entry another objectAlias", prev)
			continue
		}
		owner[f.Path] = f.Describe()
		order = append(order, f.Path)
	}
	for _, dir := range dirOrder {
		who := dirs[dir]
		if other, clash := owner[dir]; clash {
			ps.Add(who, "objectAlias", "writes its files into %q, which %s writes as a file; a path cannot be both a file and a directory", dir, other)
		}
		for parent := parentDir(dir); parent != ""; parent = parentDir(parent) {
			if other, clash := owner[parent]; clash {
				ps.Add(who, "objectAlias", "writes into %q inside %q, which %s writes as a file", dir, parent, other)
			}
		}
	}
	for _, path := range order {
		who := owner[path]
		for dir := parentDir(path); dir != ""; dir = parentDir(dir) {
			if other, clash := owner[dir]; clash {
				ps.Add(who, "objectAlias", "writes %q inside %q, which %s writes as a file; a path cannot be both a file and a directory", path, dir, other)
			}
		}
	}
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return ""
}
