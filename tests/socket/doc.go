// Package socket is coffer's whole-stack suite: coffer built by
// wiring.New from coffer serve's default flags (cli.ServeConfig), as
// `coffer serve` builds it (identity, quota, value cache and marks, byte
// limits, client cache, fetch, evaluator pool, render, metrics, server),
// differing only in what points it at the fakes and two waits shortened
// (harness_test.go's pointAtFakes and identity_test.go's
// newWorkloadHarness; TestHarnessRunsServeDefaults holds it to that),
// served over a real Unix
// socket, called by a real gRPC client as the driver calls it, reading
// from the AWS fake (tests/fakeaws) through the unmodified AWS SDK. A test
// that needs another setting says so, as a flag would. The packages' own
// unit tests stay next to their code (provider/server keeps the socket's
// and the gRPC adapter's own).
package socket
