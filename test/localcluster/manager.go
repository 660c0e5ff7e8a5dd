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

package localcluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ManagerOptions say how one manager process runs.
type ManagerOptions struct {
	// Name names its log file.
	Name string
	// Mode is --mode: all, controllers or webhook.
	Mode string
	// LeaderElect turns on leader election in LeaderElectionNamespace.
	LeaderElect             bool
	LeaderElectionNamespace string
	// Extra flags, e.g. shorter lease timings.
	Extra []string
}

// Manager is a running manager process and its addresses.
type Manager struct {
	*Process
	WebhookURL string
	HealthAddr string
	PprofAddr  string
}

// ManagerArgs is the one place that says how the tests and the bench run the
// manager: every listener on a free loopback port, metrics off, loopback sinks
// allowed.
func ManagerArgs(o ManagerOptions, webhookAddr, healthAddr, pprofAddr string) []string {
	mode := o.Mode
	if mode == "" {
		mode = "all"
	}
	args := []string{
		"--mode=" + mode,
		"--webhook-bind-address=" + webhookAddr,
		"--health-probe-bind-address=" + healthAddr,
		"--metrics-bind-address=0",
		"--pprof-bind-address=" + pprofAddr,
		// The receivers listen on loopback, which the sink address policy refuses
		// by default.
		"--sink-allow-cidrs=127.0.0.0/8",
	}
	if o.LeaderElect {
		args = append(args, "--leader-elect", "--leader-election-namespace="+o.LeaderElectionNamespace)
	}
	return append(args, o.Extra...)
}

// BuildManager builds the manager binary of the repository at root into dir.
func BuildManager(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "manager")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build of the manager: %w\n%s", err, b)
	}
	return out, nil
}

// StartManager starts the manager binary against the control plane and waits until
// its health probe answers.
func (c *ControlPlane) StartManager(ctx context.Context, bin string, o ManagerOptions) (*Manager, error) {
	addrs, err := FreeAddrs(3)
	if err != nil {
		return nil, err
	}
	args := ManagerArgs(o, addrs[0], addrs[1], addrs[2])
	p, err := StartProcess(o.Name, c.LogPath(o.Name), []string{"KUBECONFIG=" + c.Kubeconfig()}, bin, args...)
	if err != nil {
		return nil, err
	}
	m := &Manager{Process: p, WebhookURL: "http://" + addrs[0], HealthAddr: addrs[1], PprofAddr: addrs[2]}
	if err := waitHTTP(ctx, http.DefaultClient, "http://"+m.HealthAddr+"/readyz", p, time.Minute); err != nil {
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("manager %s: %w\n%s", o.Name, err, p.Tail(30))
	}
	return m, nil
}

// LogContains reports whether one line of the process's log holds every one of parts.
func (p *Process) LogContains(parts ...string) bool {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(line, s)
		}
		if all {
			return true
		}
	}
	return false
}
