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

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	specv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestArchive checks the archive `make image` wrote (IMAGE_ARCHIVE; `make test-image`
// sets it, and IMAGE_TAG, IMAGE_VERSION and IMAGE_COMMIT to what it built it with) as
// a container runtime would see it, then runs the manager out of it.
func TestArchive(t *testing.T) {
	archive := os.Getenv("IMAGE_ARCHIVE")
	if archive == "" {
		t.Fatal("IMAGE_ARCHIVE is not set: run `make test-image`, which builds the archive first")
	}
	tag, version, commit := os.Getenv("IMAGE_TAG"), os.Getenv("IMAGE_VERSION"), os.Getenv("IMAGE_COMMIT")
	if tag == "" || version == "" || commit == "" {
		t.Fatal("IMAGE_TAG, IMAGE_VERSION and IMAGE_COMMIT must be set: run `make test-image`")
	}

	// An oci-archive is an OCI image layout in a tar file.
	dir := t.TempDir()
	untar(t, archive, dir)
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("reading %s as an OCI image layout: %v", archive, err)
	}
	im, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1: %+v", len(im.Manifests), im.Manifests)
	}
	desc := im.Manifests[0]
	if got := desc.Annotations[specv1.AnnotationRefName]; got != tag {
		t.Errorf("annotation %s = %q, want %q", specv1.AnnotationRefName, got, tag)
	}
	if desc.MediaType != types.OCIManifestSchema1 {
		t.Errorf("index entry media type = %s, want %s", desc.MediaType, types.OCIManifestSchema1)
	}
	img, err := index.Image(desc.Digest)
	if err != nil {
		t.Fatalf("reading image %s: %v", desc.Digest, err)
	}
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type = %s (%v), want %s", mt, err, types.OCIManifestSchema1)
	}

	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Fatalf("platform = %s/%s, want linux/%s (build it with IMAGE_ARCH=%s to run it here)", cfg.OS, cfg.Architecture, runtime.GOARCH, runtime.GOARCH)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532", cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{"/manager"}) {
		t.Errorf("entrypoint = %q, want [/manager]", cfg.Config.Entrypoint)
	}

	// The filesystem a container gets: every layer applied in order.
	files := map[string][]byte{}
	modes := map[string]int64{}
	rc := mutate.Extract(img)
	defer rc.Close() // read-only
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading the flattened filesystem: %v", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimPrefix(h.Name, "/")
		files[name], modes[name] = data, h.Mode
	}

	certs, ok := files["/etc/ssl/certs/ca-certificates.crt"]
	if !ok {
		t.Fatal("no /etc/ssl/certs/ca-certificates.crt in the image")
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(certs) {
		t.Error("/etc/ssl/certs/ca-certificates.crt holds no PEM certificate")
	}
	if !bytes.Contains(files["/etc/passwd"], []byte("nonroot:x:65532:65532:")) {
		t.Errorf("/etc/passwd does not name user 65532: %q", files["/etc/passwd"])
	}

	manager, ok := files["/manager"]
	if !ok {
		t.Fatal("no /manager in the image")
	}
	if modes["/manager"]&0o111 == 0 {
		t.Errorf("/manager mode = %o, not executable", modes["/manager"])
	}
	// Static: no dynamic loader, so it runs on an image without libc.
	ef, err := elf.NewFile(bytes.NewReader(manager))
	if err != nil {
		t.Fatalf("/manager is not an ELF binary: %v", err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/manager is dynamically linked (it has a PT_INTERP program header): build it with CGO_ENABLED=0")
		}
	}

	bin := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(bin, manager, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --version from the image: %v\n%s", err, out)
	}
	// main.version and main.commit, set by the Makefile's LDFLAGS.
	if want := "customer-operator " + version + " (commit " + commit + ")"; !strings.Contains(string(out), want) {
		t.Errorf("manager --version printed %q, want it to contain %q", out, want)
	}
}

// untar unpacks the tar file archive into dir, refusing entries that would land
// outside it.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // read-only
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("reading %s: %v", archive, err)
		}
		if !filepath.IsLocal(h.Name) {
			t.Fatalf("%s holds %q, outside the archive's root", archive, h.Name)
		}
		path := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s holds %q of type %c: an OCI layout has only directories and files", archive, h.Name, h.Typeflag)
		}
	}
}
