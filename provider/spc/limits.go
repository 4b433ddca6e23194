package spc

import "github.com/coffer-csi/coffer/internal/yamlcheck"

// Static limits of a SecretProviderClass, checked before its YAML is
// parsed (the size) or before a list's entries are read (the counts). The
// three entry points share them: a Mount (Parse), coffer-controller sync (the
// controller's SPC.Config calls Parse) and coffer validate
// (Manifest.Check calls Parse). A class is written by any team that can
// create one in its namespace, and one provider or controller serves all
// of them: these bound what one class can make either of them do.
//
// Each is far above what a class needs: the AWS provider's published
// classes list one to three objects with at most two jmesPath entries,
// in under 1 KiB (TestPublishedClassesWithinLimits).
const (
	// MaxClassBytes bounds the parameters' keys and values together
	// (with a Mount's, the pod's volumeAttributes; without the
	// ServiceAccount tokens, which the driver adds).
	MaxClassBytes = 256 << 10
	// DefaultMaxObjects is the number of objects allowed when
	// Options.MaxObjects is 0 (the --max-objects default).
	DefaultMaxObjects = 256
	// MaxJMESPathPerObject bounds one object's jmesPath entries.
	MaxJMESPathPerObject = 64
	// MaxJMESPathEntries bounds the jmesPath entries of all objects.
	MaxJMESPathEntries = 256
	// MaxFiles bounds the templated files.
	MaxFiles = 64
)

// checkClassSize reports a class over MaxClassBytes; Parse then stops
// before any YAML is read.
func checkClassSize(attrs map[string]string, ps *yamlcheck.Checker) bool {
	size := 0
	for k, v := range attrs {
		if k != AttrTokens {
			size += len(k) + len(v)
		}
	}
	if size <= MaxClassBytes {
		return true
	}
	ps.Add("parameters", "", "are %d bytes (keys and values, with the pod's volumeAttributes), over the limit of %d; split the objects across several SecretProviderClasses", size, MaxClassBytes)
	return false
}
