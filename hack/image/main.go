/*
Copyright 2026 The customer-operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command image writes the manager's container image as an archive, without a
// Docker engine: one layer holding the static manager, the CA certificates and the
// nonroot user, on an empty base. `make image` runs it.
//
// The archive is an OCI image layout (oci-layout, index.json and blobs/sha256/) in a
// tar file: the form `skopeo copy oci-archive:`, `podman load`, `ctr images import`
// and `crane` read. Its index names the one image by the tag, in the
// org.opencontainers.image.ref.name annotation. The same sources give the same
// archive byte for byte (SOURCE_DATE_EPOCH sets every timestamp).
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// The user the manager runs as: distroless's "nonroot", which the Deployments'
// securityContexts name too.
const nonroot = 65532

func main() {
	var opts options
	flag.StringVar(&opts.binary, "binary", "", "The static manager binary (CGO_ENABLED=0).")
	flag.StringVar(&opts.caCertificates, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of CA certificates, for HTTPS sinks.")
	flag.StringVar(&opts.tag, "tag", "customer-operator:latest", "The image reference the archive names.")
	flag.StringVar(&opts.arch, "arch", "amd64", "The binary's GOARCH.")
	flag.StringVar(&opts.output, "output", "dist/customer-operator.tar", "Where to write the archive.")
	flag.Parse()
	if err := build(opts); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", opts.output, opts.tag)
}

type options struct {
	binary, caCertificates, tag, arch, output string
}

func build(opts options) error {
	if opts.binary == "" {
		return fmt.Errorf("--binary is required")
	}
	ref, err := name.NewTag(opts.tag)
	if err != nil {
		return fmt.Errorf("parsing --tag: %w", err)
	}
	manager, err := os.ReadFile(opts.binary)
	if err != nil {
		return fmt.Errorf("reading the manager: %w", err)
	}
	certs, err := os.ReadFile(opts.caCertificates)
	if err != nil {
		return fmt.Errorf("reading the CA certificates: %w", err)
	}
	created := buildTime()

	layerTar, err := rootfs(created, manager, certs)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("making the layer: %w", err)
	}

	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "hack/image", Comment: "manager, CA certificates, nonroot user"},
	})
	if err != nil {
		return fmt.Errorf("appending the layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", opts.arch
	cfg.Created = v1.Time{Time: created}
	cfg.Config.User = fmt.Sprintf("%d:%d", nonroot, nonroot)
	cfg.Config.Entrypoint = []string{"/manager"}
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "customer-operator",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.source":   "https://github.com/customer-operator/customer-operator",
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return fmt.Errorf("setting the config: %w", err)
	}
	return writeArchive(opts.output, ref, img, created)
}

// writeArchive writes img as an OCI image layout in a temporary directory, then tars
// that directory into output.
func writeArchive(output string, ref name.Tag, img v1.Image, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "customer-operator-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir) // a temporary directory
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		// What oci-archive readers (skopeo, podman, crane) name the image by.
		specv1.AnnotationRefName: ref.String(),
		// containerd (`ctr images import`, `kind load image-archive`) wants the full
		// name, in its own spelling of Docker Hub.
		"io.containerd.image.name": strings.Replace(ref.Name(), name.DefaultRegistry+"/", "docker.io/", 1),
	})); err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}

	// Written next to output and renamed, so a failed build leaves no half archive.
	tmp, err := os.CreateTemp(filepath.Dir(output), filepath.Base(output)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename
	if err := tarDir(tmp, dir, mtime); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", output, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	return nil
}

// tarDir writes dir's tree to w with entries in lexical order, one mtime and no
// owner, so the archive depends only on the files' contents.
func tarDir(w io.Writer, dir string, mtime time.Time) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// buildTime is SOURCE_DATE_EPOCH when set, so the same sources give the same image,
// and the Unix epoch otherwise.
func buildTime() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

// rootfs is the image's only layer: the manager, the CA certificates, and passwd and
// group files naming the nonroot user (for tools that look the user up).
func rootfs(mtime time.Time, manager, certs []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "home/", "tmp/"}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "home/nonroot/", Mode: 0o700, Uid: nonroot, Gid: nonroot, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonroot, nonroot)},
		{"etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", nonroot)},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, certs},
		{"manager", 0o755, manager},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
