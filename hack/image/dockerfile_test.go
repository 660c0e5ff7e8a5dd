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
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// dockerfileBuild returns the shell command of the Dockerfile's RUN instruction
// that runs `go build`, its continuation lines joined.
func dockerfileBuild(t *testing.T, dockerfile string) string {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		if cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "RUN "); ok && strings.Contains(cmd, "go build") {
			return cmd
		}
	}
	t.Fatalf("%s has no RUN instruction with go build", dockerfile)
	return ""
}

// TestDockerfileStampsVersion runs the Dockerfile's go build command as the builder
// stage does (its build args VERSION and COMMIT in the environment, no .git in the
// build context), then runs the binary with --version: it must print what the
// build args said, as the binary of `make image` does.
func TestDockerfileStampsVersion(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := dockerfileBuild(t, filepath.Join(root, "Dockerfile"))
	out := filepath.Join(t.TempDir(), "manager")
	if !strings.Contains(cmd, " -o manager ") {
		t.Fatalf("the Dockerfile's build %q does not write -o manager", cmd)
	}
	cmd = strings.Replace(cmd, " -o manager ", " -o "+out+" ", 1)

	const version, commit = "v0.0.0-dockerfile-test", "0123456789abcdef0123456789abcdef01234567"
	build := exec.Command("sh", "-c", cmd)
	build.Dir = root
	build.Env = append(os.Environ(),
		"VERSION="+version, "COMMIT="+commit,
		"TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH,
		// The build context holds no .git, so Go stamps no VCS information.
		"GOFLAGS=-buildvcs=false")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}

	got, err := exec.Command(out, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --version: %v\n%s", err, got)
	}
	want := "customer-operator " + version + " (commit " + commit + ")"
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("manager --version printed %q, want %q", strings.TrimSpace(string(got)), want)
	}
}
