// Package node is the node tier: a one-node cluster whose every part is
// real (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kubelet, containerd, runc, the CNI bridge), the Secrets Store CSI Driver
// installed with its Helm chart and coffer with its own, both from images
// built on this machine, serving real pods; and Flux's own controllers
// reconciling deployment/flux from a Git server and a Helm repository on
// the node (scenario_flux_test.go). See CONTRIBUTING.md, "The node tier".
// Run it with `make node-test` (root).
//
// The node lives in a network namespace of its own, which the suite creates
// and deletes: the node's address, the pods' bridge and the kubernetes
// Service address all exist only there, so nothing of it reaches the
// machine's own network.
package node
