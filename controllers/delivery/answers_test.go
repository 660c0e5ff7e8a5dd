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
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

const leakedSecret = "db-password=hunter2"

// captureLog is a logger at verbosity v whose lines the test can read.
func captureLog(v int) (logr.Logger, func() string) {
	var mu sync.Mutex
	var b strings.Builder
	l := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		b.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: v})
	return l, func() string {
		mu.Lock()
		defer mu.Unlock()
		return b.String()
	}
}

// A sink's answer is never quoted in the error (which goes to status and
// Events), not even its reason phrase; its start goes to the debug log only.
func TestAnswerBodyGoesToTheDebugLogOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"internal":"`+leakedSecret+`"}`)
	}))
	defer srv.Close()
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
	ev := NewEvent(testCustomer(), false, time.Now())

	for _, v := range []int{0, 1} {
		debug, logged := captureLog(v)
		client := loopbackClient()
		client.Log = debug
		res := client.Deliver(context.Background(), tgt, ev)
		if want := "POST " + srv.URL + ": HTTP 400 Bad Request"; res.Err == nil || res.Err.Error() != want {
			t.Fatalf("error = %v, want %q", res.Err, want)
		}
		inLog := strings.Contains(logged(), leakedSecret)
		if inLog != (v >= 1) {
			t.Errorf("at verbosity %d, the answer is in the log: %v; log:\n%s", v, inLog, logged())
		}
		client.CloseIdleConnections()
	}

	// A logger in the context is preferred to Client.Log.
	debug, logged := captureLog(1)
	client := loopbackClient()
	defer client.CloseIdleConnections()
	if res := client.Deliver(logr.NewContext(context.Background(), debug), tgt, ev); res.StatusCode != http.StatusBadRequest {
		t.Fatalf("Deliver = %+v", res)
	}
	if !strings.Contains(logged(), leakedSecret) {
		t.Errorf("the context's logger got nothing:\n%s", logged())
	}
}

// rawServer answers every connection with the bytes reply returns, whatever
// was asked: a sink that does not speak HTTP, or does it badly.
func rawServer(t *testing.T, reply string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err == nil {
					_, _ = io.Copy(io.Discard, req.Body)
				}
				_, _ = io.WriteString(c, reply)
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/"
}

// Errors before an answer are named by their class: net/http would quote a
// malformed status line, and a sink could make it say anything.
func TestTransportErrorsQuoteNothing(t *testing.T) {
	client := loopbackClient()
	defer client.CloseIdleConnections()
	ev := NewEvent(testCustomer(), false, time.Now())
	for name, tc := range map[string]struct {
		reply, want string
	}{
		"malformed status line": {"HTTP/1.1 " + leakedSecret + "\r\n\r\n", "request failed (details in the debug log)"},
		"custom reason phrase":  {"HTTP/1.1 418 " + leakedSecret + "\r\nContent-Length: 0\r\n\r\n", "HTTP 418 I'm a teapot"},
		"unknown code":          {"HTTP/1.1 599 " + leakedSecret + "\r\nContent-Length: 0\r\n\r\n", "HTTP 599"},
		"closed mid-answer":     {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", "connection closed by the sink before it answered"},
		"not HTTP at all":       {leakedSecret + "\r\n\r\n", "request failed (details in the debug log)"},
	} {
		t.Run(name, func(t *testing.T) {
			u := rawServer(t, tc.reply)
			tgt := mustTarget(t, u, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
			res := client.Deliver(context.Background(), tgt, ev)
			if res.Err == nil {
				t.Fatalf("Deliver = %+v", res)
			}
			if want := "POST " + u + ": " + tc.want; res.Err.Error() != want {
				t.Errorf("error = %q, want %q", res.Err, want)
			}
		})
	}

	// A TLS sink whose certificate names are the sink's to choose.
	srv, _ := tlsServer(t)
	tgt := mustTarget(t, srv.URL, crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret), KeyCA: selfSignedPEM(t)})
	res := client.Deliver(context.Background(), tgt, ev)
	if res.Err == nil || !strings.HasPrefix(res.Err.Error(), "POST "+srv.URL+": TLS: ") || strings.Contains(res.Err.Error(), "x509") {
		t.Errorf("TLS failure: %v", res.Err)
	}

	// A plain HTTP server behind an https URL.
	plain, _ := recorder(t, http.StatusOK)
	tgt = mustTarget(t, strings.Replace(plain.URL, "http://", "https://", 1), crmv1alpha1.FormatStandardWebhooks, map[string][]byte{KeySecret: []byte(vectorSecret)})
	res = client.Deliver(context.Background(), tgt, ev)
	var ne *AddressNotAllowedError
	if res.Err == nil || !strings.HasSuffix(res.Err.Error(), ": TLS: the sink did not answer in TLS") || errors.As(res.Err, &ne) {
		t.Errorf("https to an http server: %v", res.Err)
	}
}
