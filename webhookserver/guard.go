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

	"golang.org/x/time/rate"
)

// maxTrackedAddresses bounds the client addresses whose failed authentications
// are counted. Past it (after pruning) a new address is not tracked: the limit
// then fails open, while the body budget still bounds what any client costs.
const maxTrackedAddresses = 1 << 16

// addressGuard limits failed authentications per client address: an address
// may fail perMinute times at once, then perMinute times a minute; while it is
// over, every request from it is answered 429 before anything else is done. IPv6
// clients are counted per /64, the block one subscriber usually holds.
type addressGuard struct {
	perMinute int

	mu      sync.Mutex
	entries map[netip.Prefix]*rate.Limiter
}

func newAddressGuard(perMinute int) *addressGuard {
	return &addressGuard{perMinute: perMinute, entries: map[netip.Prefix]*rate.Limiter{}}
}

// blocked says whether addr is over its limit, and for how long still.
func (g *addressGuard) blocked(addr netip.Prefix, now time.Time) (time.Duration, bool) {
	if g.perMinute <= 0 || !addr.IsValid() {
		return 0, false
	}
	g.mu.Lock()
	l := g.entries[addr]
	g.mu.Unlock()
	if l == nil || l.TokensAt(now) >= 1 {
		return 0, false
	}
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return max(d, time.Second), true
}

// failed counts a failed authentication from addr.
func (g *addressGuard) failed(addr netip.Prefix, now time.Time) {
	if g.perMinute <= 0 || !addr.IsValid() {
		return
	}
	g.mu.Lock()
	l := g.entries[addr]
	if l == nil {
		if len(g.entries) >= maxTrackedAddresses {
			g.pruneLocked(now)
		}
		if len(g.entries) >= maxTrackedAddresses {
			g.mu.Unlock()
			return
		}
		l = rate.NewLimiter(rate.Limit(float64(g.perMinute)/60), g.perMinute)
		g.entries[addr] = l
		trackedAddresses.Set(float64(len(g.entries)))
	}
	g.mu.Unlock()
	l.AllowN(now, 1)
}

// prune forgets the addresses that have earned back all their allowance: they
// are as good as new, so keeping them would only grow the map.
func (g *addressGuard) prune(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pruneLocked(now)
}

func (g *addressGuard) pruneLocked(now time.Time) {
	for addr, l := range g.entries {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(g.entries, addr)
		}
	}
	trackedAddresses.Set(float64(len(g.entries)))
}

func (g *addressGuard) tracked() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
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
