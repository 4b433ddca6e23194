package secretsync

// Static limits of a syncSecrets declaration, checked before a list's
// entries are read (the declaration's size is bounded with the class's,
// spc.MaxClassBytes, before its YAML is parsed; each template's length
// and nesting by package tmpl). The controller parses every class in the
// cluster with one process: these bound what one class can make it do.
// Each is far above what a class needs (ESO's published ExternalSecrets
// map a handful of keys).
const (
	// MaxSyncSecrets bounds the Secrets one class declares.
	MaxSyncSecrets = 128
	// MaxDataEntries bounds one Secret's data entries, and its
	// template's keys.
	MaxDataEntries = 256
	// MaxDataFrom bounds one Secret's dataFrom entries.
	MaxDataFrom = 64
	// MaxMetadataEntries bounds one Secret's labels, and its annotations.
	MaxMetadataEntries = 64
)
