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

package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// DefaultDenyCIDRs are the ranges no sink may reach unless allowed: loopback,
// link-local (cloud metadata services live at 169.254.169.254), the IPv6 cloud
// metadata address fd00:ec2::254, unspecified and multicast, for IPv4 and IPv6.
// Anyone allowed to create a CustomerSink would otherwise make the operator post
// to the node's own services.
var DefaultDenyCIDRs = []string{
	"127.0.0.0/8", "::1/128",
	"169.254.0.0/16", "fe80::/10",
	"fd00:ec2::254/128",
	"0.0.0.0/8", "::/128",
	"224.0.0.0/4", "ff00::/8",
}

var defaultDeny = mustParsePrefixes(DefaultDenyCIDRs)

// AddressPolicy says which IP addresses deliveries may connect to. An address in
// Allow may be reached; otherwise one in Deny may not; anything else may. The
// zero value is the safe default: Deny nil means DefaultDenyCIDRs. To deny
// nothing, set Deny to an empty, non-nil slice (or allow 0.0.0.0/0 and ::/0).
//
// IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) are checked as the IPv4 address
// they are, and prefixes given in that form as IPv4 prefixes, so neither way of
// writing an address gets past the other. IPv6 addresses that carry an IPv4
// address a gateway or the host may reach it by (NAT64 64:ff9b::/96, 6to4
// 2002::/16, IPv4-compatible ::/96) must pass as themselves and as that IPv4
// address: 64:ff9b::a9fe:a9fe is refused as 169.254.169.254 is.
type AddressPolicy struct {
	Allow []netip.Prefix
	Deny  []netip.Prefix
}

// AddressNotAllowedError is a delivery, or a sink's URL, refused by the
// AddressPolicy. Nothing was sent.
type AddressNotAllowedError struct {
	// Addr is the refused address.
	Addr netip.Addr
	// Host is the URL's host when it is a name that resolved to Addr; empty
	// when the URL holds the address itself.
	Host string
	// Denied is the range of the deny list that holds Addr, or Carried.
	Denied netip.Prefix
	// Carried is the IPv4 address that Addr embeds (NAT64, 6to4,
	// IPv4-compatible) when that is the address denied.
	Carried netip.Addr
}

func (e *AddressNotAllowedError) Error() string {
	addr := e.Addr.String()
	if e.Carried.IsValid() {
		addr += " (carrying " + e.Carried.String() + ")"
	}
	what := "address " + addr
	if e.Host != "" {
		what = e.Host + " resolves to " + addr + ", which"
	}
	return what + " is not allowed for sinks (in the denied range " + e.Denied.String() +
		"; see --sink-deny-cidrs and --sink-allow-cidrs)"
}

// Check says whether deliveries may connect to addr. The error is an
// *AddressNotAllowedError.
func (p AddressPolicy) Check(addr netip.Addr) error {
	a := addr.WithZone("").Unmap()
	// netip.Prefix.Contains never matches an address with a zone, nor an IPv4
	// prefix an IPv4-mapped address: both are normalised above, or a zone or a
	// ::ffff: prefix would walk past the list.
	if denied, ok := p.denied(a); ok {
		return &AddressNotAllowedError{Addr: a, Denied: denied}
	}
	if v4, ok := carriedIPv4(a); ok {
		if denied, ok := p.denied(v4); ok {
			return &AddressNotAllowedError{Addr: a, Denied: denied, Carried: v4}
		}
	}
	return nil
}

// denied returns the range of the deny list that holds a, unless the allow
// list holds it.
func (p AddressPolicy) denied(a netip.Addr) (netip.Prefix, bool) {
	for _, pfx := range p.Allow {
		if normalisePrefix(pfx).Contains(a) {
			return netip.Prefix{}, false
		}
	}
	deny := p.Deny
	if deny == nil {
		deny = defaultDeny
	}
	for _, pfx := range deny {
		if n := normalisePrefix(pfx); n.Contains(a) {
			return n, true
		}
	}
	return netip.Prefix{}, false
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
	v4Compat    = netip.MustParsePrefix("::/96")
)

// carriedIPv4 returns the IPv4 address an IPv6 address reaches through NAT64
// (RFC 6052's well-known prefix, in the last 32 bits), 6to4 (RFC 3056, in bits
// 16 to 48) or as an IPv4-compatible address (RFC 4291, deprecated but still
// routed by some stacks; :: and ::1 are themselves, not IPv4 addresses).
func carriedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64Prefix.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case v4Compat.Contains(a) && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return netip.Addr{}, false
}

// CheckURL resolves the host of a sink's URL and checks every address it
// resolves to, so that a sink can be reported refused before anything is sent
// to it. A name that does not resolve is not refused here: DNS may be
// unavailable for a while, and the check at connect time still holds.
func (p AddressPolicy) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil // TargetFromSink reports a bad URL
	}
	return p.checkHost(ctx, net.DefaultResolver, u.Hostname())
}

// checkHost checks an IP literal or every address a name resolves to.
func (p AddressPolicy) checkHost(ctx context.Context, r *net.Resolver, host string) error {
	if addr, err := netip.ParseAddr(host); err == nil {
		return p.Check(addr)
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.Check(a); err != nil {
			var ne *AddressNotAllowedError
			if errors.As(err, &ne) {
				ne.Host = host
			}
			return err
		}
	}
	return nil
}

// control runs on every connection the delivery transport makes, after DNS
// resolution and before the connect: address is the IP actually dialled. This,
// not any earlier lookup, is what keeps DNS rebinding (a name answering a public
// address to the check and a private one to the connect) from getting past the
// policy.
func (p AddressPolicy) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("unexpected dial address %q", address)
	}
	return p.Check(ap.Addr())
}

// DialContext dials with the policy enforced at connect time. It also checks
// every address the host resolves to first, so that a name with one allowed and
// one denied address is refused as a whole, as CheckURL reports it, rather than
// sometimes delivered to. Every sender's connections (HTTP, database, broker)
// are made through it.
func (p AddressPolicy) DialContext(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	d.ControlContext = p.control
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if err := p.checkHost(ctx, r, host); err != nil {
			return nil, err
		}
		return d.DialContext(ctx, network, address)
	}
}

// normalisePrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// the IPv4 prefix it stands for.
func normalisePrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// ParseCIDRs reads a comma-separated list of CIDRs, as the --sink-allow-cidrs and
// --sink-deny-cidrs flags hold them; a bare address stands for itself alone. An
// empty string is an empty, non-nil list.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", f)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR: %w", f, err)
		}
		out = append(out, normalisePrefix(p))
	}
	return out, nil
}

func mustParsePrefixes(ss []string) []netip.Prefix {
	p, err := ParseCIDRs(strings.Join(ss, ","))
	if err != nil {
		panic(err)
	}
	return p
}
