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

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestArchive checks the archive `make image` wrote (IMAGE_ARCHIVE; `make test-image`
// sets it) as a container runtime would see it, then runs the manager out of it.
func TestArchive(t *testing.T) {
	archive := os.Getenv("IMAGE_ARCHIVE")
	if archive == "" {
		t.Fatal("IMAGE_ARCHIVE is not set: run `make test-image`, which builds the archive first")
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatalf("reading %s: %v", archive, err)
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
	defer rc.Close() //nolint:errcheck // read-only
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
	// TODO(lead): run --version and check it prints the version and the commit
	// (main.version/main.commit, set by LDFLAGS) once the manager has the flag.
	out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --help from the image: %v\n%s", err, out)
	}
	for _, flag := range []string{"-mode", "-webhook-bind-address", "-metrics-bind-address"} {
		if !bytes.Contains(out, []byte(flag)) {
			t.Errorf("manager --help does not list %s:\n%s", flag, out)
		}
	}
}
