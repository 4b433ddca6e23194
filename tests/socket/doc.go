// Package socket is coffer's whole-stack suite: a provider wired as
// `coffer serve` wires it (auth, provider, fetch, render, cache, metrics),
// served over a real Unix socket with provider/server, called by a real
// gRPC client as the driver calls it, reading from the AWS fake
// (tests/fakeaws) through the unmodified AWS SDK. Its tests live in
// *_test.go files; harness_test.go and identity_test.go's
// newWorkloadHarness build the stack. The packages' own unit tests stay
// next to their code (provider/server keeps the socket's and the gRPC
// adapter's own).
package socket
