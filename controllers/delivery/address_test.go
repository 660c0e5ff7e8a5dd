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
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

// loopbackPolicy is the one exception these tests need: their sinks are httptest
// servers on loopback, which the default policy refuses.
var loopbackPolicy = AddressPolicy{Allow: mustParsePrefixes([]string{"127.0.0.0/8", "::1/128"})}

func loopbackClient() *Client { return &Client{Policy: loopbackPolicy} }

// countingServer is a sink that counts the TCP connections it accepts and the
// requests it serves, so a test can tell "refused before connecting" from
// "refused by the server".
func countingServer(t *testing.T) (srv *httptest.Server, conns, requests *atomic.Int32) {
	conns, requests = new(atomic.Int32), new(atomic.Int32)
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, conns, requests
}

func TestAddressPolicyCheck(t *testing.T) {
	defaults := AddressPolicy{}
	var p AddressPolicy
	for addr, refused := range map[string]bool{
		"127.0.0.1":                   true,
		"127.255.1.2":                 true,
		"::1":                         true,
		"169.254.169.254":             true,
		"fe80::1":                     true,
		"fe80::1%eth0":                true, // a zone must not hide the address
		"0.0.0.0":                     true,
		"::":                          true,
		"224.0.0.251":                 true,
		"ff02::1":                     true,
		"::ffff:127.0.0.1":            true, // IPv4-mapped forms are the IPv4 address
		"::ffff:169.254.169.254":      true,
		"8.8.8.8":                     false,
		"10.0.0.1":                    false,
		"192.168.1.1":                 false,
		"2001:db8::1":                 false,
		"::ffff:8.8.8.8":              false,
		"64:ff9b::a9fe:a9fe":          true, // NAT64 of 169.254.169.254
		"2606:4700:4700::1111":        false,
		"fe80::ffff:a9fe:a9fe%lo":     true,
		"::ffff:224.0.0.1":            true,
		"::ffff:0.0.0.0":              true,
		"169.253.255.255":             false,
		"128.0.0.1":                   false,
		"::2":                         true, // IPv4-compatible 0.0.0.2
		"fec0::1":                     false,
		"ff00::":                      true,
		"febf:ffff:ffff:ffff::1":      true,
		"fe7f:ffff:ffff:ffff:ffff::1": false,
	} {
		err := defaults.Check(netip.MustParseAddr(addr))
		if (err != nil) != refused {
			t.Errorf("default policy, %s: %v, want refused=%v", addr, err, refused)
		}
		var ne *AddressNotAllowedError
		if err != nil && (!errors.As(err, &ne) || !strings.Contains(err.Error(), ne.Addr.String())) {
			t.Errorf("%s: error %q is not an *AddressNotAllowedError naming the address", addr, err)
		}
	}

	// Allow takes precedence, for its range only.
	p = AddressPolicy{Allow: mustParsePrefixes([]string{"127.0.0.0/8"})}
	if err := p.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("allowed 127.0.0.0/8, 127.0.0.1: %v", err)
	}
	if err := p.Check(netip.MustParseAddr("::ffff:127.0.0.1")); err != nil {
		t.Errorf("allowed 127.0.0.0/8, ::ffff:127.0.0.1: %v", err)
	}
	if err := p.Check(netip.MustParseAddr("::1")); err == nil {
		t.Error("allowed 127.0.0.0/8, ::1 was allowed too")
	}
	if err := p.Check(netip.MustParseAddr("169.254.169.254")); err == nil {
		t.Error("allowed 127.0.0.0/8, 169.254.169.254 was allowed too")
	}

	// A deny list of its own replaces the defaults; prefixes written IPv4-mapped
	// count as IPv4.
	p = AddressPolicy{Deny: mustParsePrefixes([]string{"::ffff:10.0.0.0/104"})}
	if err := p.Check(netip.MustParseAddr("10.1.2.3")); err == nil {
		t.Error("deny ::ffff:10.0.0.0/104 let 10.1.2.3 through")
	}
	if err := p.Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("deny ::ffff:10.0.0.0/104 refused 127.0.0.1: %v", err)
	}
	// An empty, non-nil deny list denies nothing.
	if err := (AddressPolicy{Deny: []netip.Prefix{}}).Check(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("empty deny list: %v", err)
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs(" 10.0.0.0/8, fd00::/8,192.0.2.7,::ffff:172.16.0.0/108 ,")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "fd00::/8", "192.0.2.7/32", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("ParseCIDRs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("ParseCIDRs[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	if got, err := ParseCIDRs(""); err != nil || got == nil || len(got) != 0 {
		t.Errorf(`ParseCIDRs("") = %#v, %v; want an empty, non-nil list`, got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "localhost", "10.0.0/8"} {
		if _, err := ParseCIDRs(bad); err == nil {
			t.Errorf("ParseCIDRs(%q) accepted it", bad)
		}
	}
}

// The default policy refuses a loopback sink before connecting: the server sees
// no connection at all, and the error says which address was refused.
func TestDeliverDefaultPolicyRefusesLoopback(t *testing.T) {
	srv, conns, requests := countingServer(t)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	var client Client // the zero value: the default policy
	defer client.CloseIdleConnections()
	ev := NewEvent(testCustomer(), false, time.Now())
	for _, tc := range []struct{ url, addr, host string }{
		{srv.URL, "127.0.0.1", ""},
		// A name is checked on what it resolves to.
		{"http://localhost:" + strconv.Itoa(port) + "/", "", "localhost"},
		// The IPv4-mapped IPv6 form of a denied address is the same address.
		{"http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/", "127.0.0.1", ""},
	} {
		tgt := mustTarget(t, tc.url, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
		res := client.Deliver(context.Background(), tgt, ev)
		var ne *AddressNotAllowedError
		if !errors.As(res.Err, &ne) || res.StatusCode != 0 {
			t.Fatalf("%s: Deliver = %+v, want an *AddressNotAllowedError", tc.url, res)
		}
		if tc.addr != "" && ne.Addr.String() != tc.addr {
			t.Errorf("%s: refused address %s, want %s", tc.url, ne.Addr, tc.addr)
		}
		if ne.Host != tc.host || !strings.Contains(res.Err.Error(), ne.Addr.String()) || !ne.Addr.IsLoopback() {
			t.Errorf("%s: error %q (host %q)", tc.url, res.Err, ne.Host)
		}
		if err := AddressPolicy.CheckURL(AddressPolicy{}, context.Background(), tc.url); !errors.As(err, &ne) {
			t.Errorf("CheckURL(%s) = %v, want an *AddressNotAllowedError", tc.url, err)
		}
	}
	if n, r := conns.Load(), requests.Load(); n != 0 || r != 0 {
		t.Errorf("the sink saw %d connections and %d requests; want none", n, r)
	}
}

// An allow-listed range is reached, in either form of the address.
func TestDeliverAllowListed(t *testing.T) {
	srv, _, requests := countingServer(t)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	client := &Client{Policy: AddressPolicy{Allow: mustParsePrefixes([]string{"127.0.0.0/8"})}}
	defer client.CloseIdleConnections()
	ev := NewEvent(testCustomer(), false, time.Now())
	for _, u := range []string{srv.URL, "http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/"} {
		tgt := mustTarget(t, u, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
		if res := client.Deliver(context.Background(), tgt, ev); res.Err != nil || res.StatusCode != http.StatusNoContent {
			t.Errorf("%s: Deliver = %+v", u, res)
		}
		if err := client.Policy.CheckURL(context.Background(), u); err != nil {
			t.Errorf("CheckURL(%s) = %v", u, err)
		}
	}
	if requests.Load() != 2 {
		t.Errorf("the sink got %d requests, want 2", requests.Load())
	}
}

// The check at connect time stands on its own: it sees the address actually
// dialled, after any resolution, which is what defeats DNS rebinding.
func TestDialControlRefusesAtConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := &net.Dialer{ControlContext: AddressPolicy{}.control}
	_, err = d.DialContext(context.Background(), "tcp", ln.Addr().String())
	var ne *AddressNotAllowedError
	if !errors.As(err, &ne) || ne.Addr.String() != "127.0.0.1" {
		t.Fatalf("dial = %v, want an *AddressNotAllowedError for 127.0.0.1", err)
	}
	d = &net.Dialer{ControlContext: loopbackPolicy.control}
	c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	defer c.Close()
	// Connections are accepted in the order they were made: had the refused
	// dial connected, it would come first.
	first, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if first.RemoteAddr().String() != c.LocalAddr().String() {
		t.Errorf("the first connection accepted is from %s, not the allowed dial (%s)", first.RemoteAddr(), c.LocalAddr())
	}
}

// IPv6 forms that carry an IPv4 address, which a NAT64 gateway, a 6to4 relay or
// the host's own stack reaches, are refused as that IPv4 address; and the IPv6
// cloud metadata address is in the defaults.
func TestAddressPolicyChecksTheIPv4AddressAnIPv6AddressCarries(t *testing.T) {
	defaults := AddressPolicy{}
	for _, tc := range []struct {
		addr    string
		carried string // "" when allowed
		denied  string
	}{
		{"fd00:ec2::254", "", "fd00:ec2::254/128"},
		{"64:ff9b::a9fe:a9fe", "169.254.169.254", "169.254.0.0/16"},
		{"64:ff9b::169.254.169.254", "169.254.169.254", "169.254.0.0/16"},
		{"64:ff9b::7f00:1", "127.0.0.1", "127.0.0.0/8"},
		{"64:ff9b::e000:fb", "224.0.0.251", "224.0.0.0/4"},
		{"2002:7f00:0001::", "127.0.0.1", "127.0.0.0/8"},
		{"2002:a9fe:a9fe:1234::5", "169.254.169.254", "169.254.0.0/16"},
		{"2002:0:0::1", "0.0.0.0", "0.0.0.0/8"},
		{"::127.0.0.1", "127.0.0.1", "127.0.0.0/8"},
		{"::a9fe:a9fe", "169.254.169.254", "169.254.0.0/16"},
		{"::169.254.169.254%eth0", "169.254.169.254", "169.254.0.0/16"},
		// The same forms of allowed IPv4 addresses pass.
		{"64:ff9b::808:808", "", ""},
		{"2002:808:808::1", "", ""},
		{"::8.8.8.8", "", ""},
		// Only the well-known NAT64 prefix is decoded.
		{"64:ff9c::a9fe:a9fe", "", ""},
	} {
		err := defaults.Check(netip.MustParseAddr(tc.addr))
		if tc.denied == "" {
			if err != nil {
				t.Errorf("%s: %v, want allowed", tc.addr, err)
			}
			continue
		}
		var ne *AddressNotAllowedError
		if !errors.As(err, &ne) {
			t.Errorf("%s: %v, want refused in %s", tc.addr, err, tc.denied)
			continue
		}
		if ne.Denied.String() != tc.denied {
			t.Errorf("%s: denied by %s, want %s", tc.addr, ne.Denied, tc.denied)
		}
		if tc.carried != "" && !strings.Contains(err.Error(), "carrying "+tc.carried) {
			t.Errorf("%s: %q does not name the carried address %s", tc.addr, err, tc.carried)
		}
	}

	// Allowing the IPv4 address allows its IPv6 forms; a deny list of one's own
	// is applied to the carried address too.
	p := AddressPolicy{Allow: mustParsePrefixes([]string{"169.254.169.254"})}
	if err := p.Check(netip.MustParseAddr("64:ff9b::a9fe:a9fe")); err != nil {
		t.Errorf("allowed 169.254.169.254, its NAT64 form: %v", err)
	}
	p = AddressPolicy{Deny: mustParsePrefixes([]string{"10.0.0.0/8"})}
	if err := p.Check(netip.MustParseAddr("2002:a00:1::")); err == nil {
		t.Error("denied 10.0.0.0/8, 6to4 2002:a00:1:: (10.0.0.1) was allowed")
	}
}

// The carried IPv4 address is checked where it counts, at connect time: a
// delivery to the NAT64 form of a denied address is refused before anything is
// dialled.
func TestDeliveryToTheNAT64FormOfADeniedAddressIsRefused(t *testing.T) {
	c := &Client{}
	res := c.Deliver(context.Background(), &Target{URL: "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", Format: crmv1alpha1.FormatCloudEvents, Timeout: 2 * time.Second},
		NewEvent(testCustomer(), false, time.Now()))
	var ne *AddressNotAllowedError
	if !errors.As(res.Err, &ne) || ne.Denied.String() != "169.254.0.0/16" {
		t.Fatalf("delivery to 64:ff9b::a9fe:a9fe: %v, want refused as 169.254.169.254", res.Err)
	}
}
