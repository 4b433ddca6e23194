package image

import (
	"fmt"
	"os"
)

// Nonroot is the user distroless images run as by default, and coffer's
// image with them.
const (
	NonrootUID  = 65532
	NonrootUser = "65532:65532"
)

// CABundlePath is where Debian's ca-certificates package (Mozilla's root
// store, as distroless ships it) keeps its bundle, on this machine and in the
// image.
const CABundlePath = "/etc/ssl/certs/ca-certificates.crt"

// Base is what distroless/static gives a static binary: the root, nonroot
// and nobody users and groups, a CA bundle, a /tmp and a home for nonroot.
// The bundle comes from the build machine (ca ""), or from the file ca.
func Base(ca string) ([]File, error) {
	if ca == "" {
		ca = CABundlePath
	}
	bundle, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w (install Debian's ca-certificates, or pass a bundle)", err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonrootUID, NonrootUID)
	group := fmt.Sprintf("root:x:0:\nnobody:x:65534:\nnonroot:x:%d:\n", NonrootUID)
	return []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(passwd)},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(group)},
		{Path: CABundlePath, Mode: 0o644, Data: bundle},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
		{Path: "/root", Dir: true, Mode: 0o700},
		{Path: "/home/nonroot", Dir: true, Mode: 0o700, UID: NonrootUID, GID: NonrootUID},
	}, nil
}
