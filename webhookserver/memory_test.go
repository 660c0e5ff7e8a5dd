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

package webhookserver

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// vmRSS is the process's resident set size, from /proc/self/status.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	Expect(err).NotTo(HaveOccurred())
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			Expect(err).NotTo(HaveOccurred())
			return kb << 10
		}
	}
	Fail("no VmRSS in /proc/self/status")
	return 0
}

// rssPeak samples the RSS until stop is called and returns the highest sample.
func rssPeak() (stop func() int64) {
	var peak atomic.Int64
	peak.Store(vmRSS())
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := vmRSS(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak.Load()
	}
}

// stalledRequest writes one POST by hand to a loopback server: its headers, then
// all but the last byte of a body of size bytes, generated on the fly from one
// shared chunk so the sender holds no body; then it waits for release before the
// last byte. stalled is closed once the request stands stalled (or the server
// stopped reading it); the answer's status code, or 0, goes to code.
func stalledRequest(addr, path string, header http.Header, size int, release <-chan struct{}, stalled func(), code *int) {
	defer GinkgoRecover()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		stalled()
		return
	}
	defer func() { _ = conn.Close() }()

	answered := make(chan struct{})
	go func() {
		defer close(answered)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			*code = resp.StatusCode
			_ = resp.Body.Close()
		}
	}()

	var head bytes.Buffer
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", path, addr, size)
	_ = header.Write(&head)
	head.WriteString("\r\n")
	var once sync.Once
	signal := func() { once.Do(stalled) }
	go func() {
		select {
		case <-answered:
			signal()
		case <-release:
		}
	}()
	if _, err := conn.Write(head.Bytes()); err == nil {
		chunk := stallChunk[:]
		for left := size - 1; left > 0 && err == nil; left -= len(chunk) {
			_, err = conn.Write(chunk[:min(left, len(chunk))])
		}
		signal()
		if err == nil {
			select {
			case <-release:
				_, _ = conn.Write([]byte{'}'})
			case <-answered:
			}
		}
	}
	signal()
	select {
	case <-answered:
	case <-time.After(30 * time.Second):
	}
}

var stallChunk = [32 << 10]byte{}

func init() {
	for i := range stallChunk {
		stallChunk[i] = 'x'
	}
}

var _ = Describe("Unauthenticated traffic", Serial, func() {
	const (
		conns    = 200
		bodySize = 1_000_000
		maxGrow  = 96 << 20
	)

	// flood holds conns stalled 1 MB requests against a server of its own (so its
	// per-address state is its own) and returns the RSS growth and the answers.
	flood := func(provider crmv1alpha1.Provider, secret map[string][]byte, header http.Header) (int64, []int) {
		srvURL := startServer(cfg, Options{BindAddress: "127.0.0.1:0"})
		u, err := url.Parse(srvURL)
		Expect(err).NotTo(HaveOccurred())
		ns := newNamespace()
		createSource(ns, "src", provider, secret)
		waitServed(srvURL, ns, "src")

		runtime.GC()
		debug.FreeOSMemory()
		base := vmRSS()
		stop := rssPeak()

		release := make(chan struct{})
		var standing, answered sync.WaitGroup
		codes := make([]int, conns)
		for i := range conns {
			standing.Add(1)
			answered.Add(1)
			go func() {
				defer answered.Done()
				stalledRequest(u.Host, "/hooks/"+ns+"/src", header, bodySize, release, standing.Done, &codes[i])
			}()
		}
		standing.Wait()
		time.Sleep(300 * time.Millisecond) // let the server take what it will of the stalled bodies
		close(release)
		answered.Wait()
		peak := stop()
		GinkgoWriter.Printf("%s: RSS %d MiB before, peak %d MiB (+%d MiB)\n", provider, base>>20, peak>>20, (peak-base)>>20)
		return peak - base, codes
	}

	nonSuccess := func(codes []int) {
		GinkgoHelper()
		seen := map[int]int{}
		for _, c := range codes {
			seen[c]++
		}
		GinkgoWriter.Printf("answers: %v\n", seen)
		for i, c := range codes {
			Expect(c).To(BeNumerically(">=", 400), "request %d answered %d (0: no answer)", i, c)
		}
	}

	It("keeps 200 stalled 1 MB bodies with wrong Basic credentials (Payway) under 96 MiB, none answered 2xx", func() {
		grew, codes := flood(crmv1alpha1.ProviderPayway, paywaySecret, http.Header{
			"Content-Type":  {"application/json"},
			"Authorization": {providers.BasicHeader([]byte("payway"), []byte("guess"))},
		})
		nonSuccess(codes)
		Expect(grew).To(BeNumerically("<", maxGrow), "RSS grew by %d MiB", grew>>20)
	})

	It("keeps 200 stalled 1 MB bodies with a wrong GETTRX signature under 96 MiB, none answered 2xx", func() {
		t := strconv.FormatInt(time.Now().Unix(), 10)
		grew, codes := flood(crmv1alpha1.ProviderGETTRX, gettrxSecret, http.Header{
			"Content-Type":        {"application/json"},
			"X-Webhook-Signature": {"t=" + t + ",v1=" + strings.Repeat("0", 64)},
		})
		nonSuccess(codes)
		Expect(grew).To(BeNumerically("<", maxGrow), "RSS grew by %d MiB", grew>>20)
	})
})
