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
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/customer-operator/customer-operator/test/localcluster"
)

// load is where a phase's work went: each process's CPU and the API server's
// requests by verb and resource. Where a figure falls short, it says which
// process, and which requests, to look at.
type load struct {
	cpu      map[string]time.Duration
	requests map[string]float64
}

// snapshot reads the CPU of the control plane, the bench itself and the given
// managers, and the API server's request counters.
func (b *bench) snapshot(managers ...*localcluster.Manager) load {
	l := load{cpu: map[string]time.Duration{}, requests: b.apiRequests()}
	procs := map[string]int{"kube-apiserver": b.cp.APIServer().Pid(), "etcd": b.cp.Etcd().Pid(), "bench": os.Getpid()}
	for _, m := range managers {
		procs["manager"] = m.Pid()
	}
	for name, pid := range procs {
		if d, err := localcluster.CPUTime(pid); err == nil {
			l.cpu[name] = d
		}
	}
	return l
}

// add accumulates the work between before and after into l.
func (l *load) add(before, after load) {
	if l.cpu == nil {
		l.cpu, l.requests = map[string]time.Duration{}, map[string]float64{}
	}
	for k, v := range after.cpu {
		l.cpu[k] += v - before.cpu[k]
	}
	for k, v := range after.requests {
		l.requests[k] += v - before.requests[k]
	}
}

// report logs the CPU per unit of each process and the requests per unit, the
// largest first, between two snapshots.
func (b *bench) report(phase string, before, after load, units float64, unit string) {
	var cpu []string
	for _, name := range []string{"kube-apiserver", "etcd", "manager", "bench"} {
		if d, ok := after.cpu[name]; ok {
			cpu = append(cpu, fmt.Sprintf("%s %.2f ms", name, float64((d-before.cpu[name]).Microseconds())/1000/units))
		}
	}
	type req struct {
		key string
		n   float64
	}
	var reqs []req
	for k, v := range after.requests {
		if d := v - before.requests[k]; d > 0 {
			reqs = append(reqs, req{k, d / units})
		}
	}
	slices.SortFunc(reqs, func(a, b req) int {
		switch {
		case a.n > b.n:
			return -1
		case a.n < b.n:
			return 1
		}
		return strings.Compare(a.key, b.key)
	})
	var top []string
	for _, r := range reqs[:min(len(reqs), 8)] {
		top = append(top, fmt.Sprintf("%s %.2f", r.key, r.n))
	}
	b.logf("%s: CPU per %s: %s; API requests per %s: %s", phase, unit, strings.Join(cpu, ", "), unit, strings.Join(top, ", "))
}

// apiRequests sums apiserver_request_total by verb, resource and subresource.
func (b *bench) apiRequests() map[string]float64 {
	out := map[string]float64{}
	hc, err := rest.HTTPClientFor(b.cp.RESTConfig())
	if err != nil {
		return out
	}
	resp, err := hc.Get(b.cp.URL() + "/metrics")
	if err != nil {
		return out
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return out
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(line, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		var verb, resource, sub, code string
		for _, kv := range strings.Split(labels, ",") {
			k, val, _ := strings.Cut(kv, "=")
			val = strings.Trim(val, `"`)
			switch k {
			case "verb":
				verb = val
			case "resource":
				resource = val
			case "subresource":
				sub = val
			case "code":
				code = val
			}
		}
		if sub != "" {
			resource += "/" + sub
		}
		if code != "" && !strings.HasPrefix(code, "2") {
			resource += " " + code
		}
		out[verb+" "+resource] += v
	}
	return out
}

// apiProfile fetches a CPU profile of the API server for d in the background
// into the profile directory (nothing without one); the channel closes when it
// is done.
func (b *bench) apiProfile(file string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if b.profileDir == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		hc, err := rest.HTTPClientFor(b.cp.RESTConfig())
		if err != nil {
			return
		}
		resp, err := hc.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", b.cp.URL(), max(1, int(d.Seconds()))))
		if err != nil {
			b.logf("API server profile: %v", err)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		f, err := os.Create(filepath.Join(b.profileDir, file))
		if err != nil {
			b.logf("API server profile: %v", err)
			return
		}
		defer func() { _ = f.Close() }()
		_, _ = io.Copy(f, resp.Body)
	}()
	return done
}
