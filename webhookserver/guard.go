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
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/types"
)

// maxTracked bounds the keys a failure budget counts. Past it (after pruning) a
// new key is not tracked: the budget then fails open, while the body budget and
// the per-address read cap still bound what any client costs.
const maxTracked = 1 << 16

// failureBudget limits failed authentications per key: a key may fail perMinute
// times at once, then perMinute times a minute; while it is over, its requests
// are answered 429 before anything else is done.
type failureBudget[K comparable] struct {
	perMinute int
	gauge     prometheus.Gauge

	mu      sync.Mutex
	entries map[K]*rate.Limiter
}

func newFailureBudget[K comparable](perMinute int, gauge prometheus.Gauge) *failureBudget[K] {
	return &failureBudget[K]{perMinute: perMinute, gauge: gauge, entries: map[K]*rate.Limiter{}}
}

// blocked says whether k is over its budget, and for how long still.
func (b *failureBudget[K]) blocked(k K, now time.Time) (time.Duration, bool) {
	if b.perMinute <= 0 {
		return 0, false
	}
	b.mu.Lock()
	l := b.entries[k]
	b.mu.Unlock()
	if l == nil || l.TokensAt(now) >= 1 {
		return 0, false
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return max(d, time.Second), true
}

// failed counts a failure of k.
func (b *failureBudget[K]) failed(k K, now time.Time) {
	if b.perMinute <= 0 {
		return
	}
	b.mu.Lock()
	l := b.entries[k]
	if l == nil {
		if len(b.entries) >= maxTracked {
			b.pruneLocked(now, nil)
		}
		if len(b.entries) >= maxTracked {
			b.mu.Unlock()
			return
		}
		l = rate.NewLimiter(rate.Limit(float64(b.perMinute)/60), b.perMinute)
		b.entries[k] = l
		b.gauge.Set(float64(len(b.entries)))
	}
	b.mu.Unlock()
	l.AllowN(now, 1)
}

// prune forgets the keys that have earned back their whole allowance, they are
// as good as new, and the keys gone says are gone.
func (b *failureBudget[K]) prune(now time.Time, gone func(K) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pruneLocked(now, gone)
}

func (b *failureBudget[K]) pruneLocked(now time.Time, gone func(K) bool) {
	for k, l := range b.entries {
		if l.TokensAt(now) >= float64(l.Burst()) || (gone != nil && gone(k)) {
			delete(b.entries, k)
		}
	}
	b.gauge.Set(float64(len(b.entries)))
}

func (b *failureBudget[K]) tracked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries)
}

// sourceClient is one client address sending to one source.
type sourceClient struct {
	addr   netip.Prefix
	source types.UID
}

// addressGuard holds the failure budgets. Providers send every tenant's webhooks
// from a few shared egress addresses, so the budget that locks out is the one of
// an address at one source: a tenant whose source keeps failing (a wrong key, a
// stranger guessing) blocks that address at that source only. A looser budget
// per address, across sources and unknown paths, stays, so that guessing many
// paths or many sources is bounded too. IPv6 clients are counted per /64, the
// block one subscriber usually holds.
type addressGuard struct {
	address *failureBudget[netip.Prefix]
	source  *failureBudget[sourceClient]
}

func newAddressGuard(perSource, perAddress int) *addressGuard {
	return &addressGuard{
		address: newFailureBudget[netip.Prefix](perAddress, trackedAddresses),
		source:  newFailureBudget[sourceClient](perSource, trackedSourceClients),
	}
}

// addressBlocked says whether addr is over its budget across all sources.
func (g *addressGuard) addressBlocked(addr netip.Prefix, now time.Time) (time.Duration, bool) {
	if !addr.IsValid() {
		return 0, false
	}
	return g.address.blocked(addr, now)
}

// sourceBlocked says whether addr is over its budget at the source.
func (g *addressGuard) sourceBlocked(addr netip.Prefix, source types.UID, now time.Time) (time.Duration, bool) {
	if !addr.IsValid() {
		return 0, false
	}
	return g.source.blocked(sourceClient{addr, source}, now)
}

// failed counts a failure from addr at a source; an empty source (an unknown
// path) counts against the address alone.
func (g *addressGuard) failed(addr netip.Prefix, source types.UID, now time.Time) {
	if !addr.IsValid() {
		return
	}
	g.address.failed(addr, now)
	if source != "" {
		g.source.failed(sourceClient{addr, source}, now)
	}
}

// prune forgets the keys that earned back their allowance, and those of the
// sources live does not hold.
func (g *addressGuard) prune(now time.Time, live func(types.UID) bool) {
	g.address.prune(now, nil)
	var gone func(sourceClient) bool
	if live != nil {
		gone = func(k sourceClient) bool { return !live(k.source) }
	}
	g.source.prune(now, gone)
}

// clientAddress is the address a request is counted against: the peer, or, when
// the peer is a trusted proxy, the right-most address in X-Forwarded-For that is
// not a trusted proxy (the left part of that header is the client's to forge).
func clientAddress(r *http.Request, trusted []netip.Prefix) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	addr := ap.Addr().Unmap()
	if isTrusted(addr, trusted) {
		var hops []string
		for _, v := range r.Header.Values("X-Forwarded-For") {
			hops = append(hops, strings.Split(v, ",")...)
		}
		for i := len(hops) - 1; i >= 0; i-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = hop.Unmap()
			if !isTrusted(addr, trusted) {
				break
			}
		}
	}
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// ParsePrefixes reads a comma-separated list of CIDRs (or single addresses).
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range strings.Split(list, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if !strings.Contains(v, "/") {
			a, err := netip.ParseAddr(v)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", v, err)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", v, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
