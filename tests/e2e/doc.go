// Package e2e is coffer's end-to-end suite: the real Secrets Store CSI
// Driver, a real kube-apiserver (with etcd and the garbage collector of
// kube-controller-manager), real ServiceAccount tokens, coffer and the AWS
// fake, each a separate process on loopback, with the test playing kubelet
// over the driver's CSI socket. Run it with `make e2e` from the repository
// root (as root: the driver mounts tmpfs).
package e2e
