// Command image writes coffer's container image as a docker-archive
// tarball, built from this repository's source with no Docker daemon and no
// registry (make image). Load or push it with any of:
//
//	docker load -i bin/coffer-image.tar
//	ctr images import bin/coffer-image.tar
//	skopeo copy docker-archive:bin/coffer-image.tar docker://REGISTRY/coffer:TAG
//	crane push bin/coffer-image.tar REGISTRY/coffer:TAG
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/coffer-csi/coffer/hack/image"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	repo := fs.String("repo", ".", "the repository's root")
	version := fs.String("version", "dev", "coffer's version: stamped into the binary, the label and the default tag")
	revision := fs.String("revision", "", "git commit for the org.opencontainers.image.revision label")
	ref := fs.String("ref", "", "the archive's image reference (default ghcr.io/coffer-csi/coffer:<version>)")
	out := fs.String("out", "bin/coffer-image.tar", "the archive to write")
	ca := fs.String("ca-bundle", "", "CA bundle to ship (default: this machine's "+image.CABundlePath+")")
	arch := fs.String("arch", "", "GOARCH of the image (default: this machine's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ref == "" {
		*ref = "ghcr.io/coffer-csi/coffer:" + *version
	}
	spec, goarch, err := image.BuildCoffer(image.CofferOptions{Repo: *repo, Version: *version, Revision: *revision, CABundle: *ca, GOARCH: *arch})
	if err != nil {
		return err
	}
	img, err := image.Build(spec, goarch)
	if err != nil {
		return err
	}
	if err := image.WriteArchive(*out, *ref, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s (image %s)\n", *out, *ref, d)
	return nil
}
