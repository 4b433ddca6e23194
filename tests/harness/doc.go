// Package harness runs the real processes of a test cluster on this
// machine: etcd and kube-apiserver on loopback (or an address of a network
// namespace the test created), with their PKI, and any other component as a
// Process in a Group that stops them all. The end-to-end suite (tests/e2e),
// the deployment tests (tests/deploy) and the node tier (tests/node) share
// it. It needs nothing but the standard library, so each test module keeps
// its own Kubernetes client version.
package harness
