// Package e2e is coffer's end-to-end suite: the real Secrets Store CSI
// Driver, a real kube-apiserver (with etcd and the garbage collector of
// kube-controller-manager), real ServiceAccount tokens, coffer and the AWS
// fake, each a separate process on loopback, with the test playing kubelet
// over the driver's CSI socket. Run it with `make e2e` from the repository
// root (as root: the driver mounts tmpfs).
//
// Files: harness_*_test.go start and drive the cluster (processes, the
// kube-apiserver's objects, kubelet's part, the AWS fake's seed, helpers)
// and hold no Test functions but TestMain; scenario_*_test.go hold the
// scenarios, one Test each, numbered 1 to 15 in their comments. Each
// scenario works in a namespace of its own and reads logs from a mark it
// takes, so none depends on another having run. A new scenario goes into
// the scenario file of its area with the next number; a helper two
// scenarios share goes into a harness file.
package e2e
