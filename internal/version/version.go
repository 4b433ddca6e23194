// Package version holds coffer's build version, stamped by the linker:
// -ldflags "-X github.com/coffer-csi/coffer/internal/version.Version=v1.2.3".
package version

// Version is set at build time; "dev" for plain go build.
var Version = "dev"
