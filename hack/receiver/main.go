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

// Command receiver is an example CustomerSink endpoint: it verifies the Standard
// Webhooks signature of each delivery, drops redeliveries by webhook-id, and logs one
// line per event. It depends on nothing but the standard library, so it can be copied
// as the starting point of a real receiver.
//
//	WEBHOOK_SECRET=whsec_... go run ./hack/receiver --addr 127.0.0.1:9393
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxBody bounds a delivery: a Customer is far smaller, and an unauthenticated
// sender must not make us buffer more before the signature is checked.
const maxBody = 1 << 20

func main() {
	addr := flag.String("addr", "127.0.0.1:9393", "address to listen on")
	secret := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "Standard Webhooks secret, whsec_<base64> (default: env WEBHOOK_SECRET)")
	tolerance := flag.Duration("tolerance", 5*time.Minute, "how far webhook-timestamp may be from now")
	flag.Parse()
	log.SetFlags(log.LstdFlags)

	key, err := decodeSecret(*secret)
	if err != nil {
		log.Fatalf("receiver: --secret or WEBHOOK_SECRET: %v", err)
	}
	r := &receiver{key: key, tolerance: *tolerance, seen: newSeenSet(10000)}
	srv := &http.Server{Addr: *addr, Handler: r, ReadHeaderTimeout: 10 * time.Second}

	if err := serve(srv); err != nil {
		log.Fatalf("receiver: %v", err)
	}
}

// serve runs srv until SIGINT or SIGTERM, then shuts it down.
func serve(srv *http.Server) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("receiver: listening on http://%s/", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type receiver struct {
	key       []byte
	tolerance time.Duration
	seen      *seenSet
}

// event is the part of a delivery this receiver logs; the body carries the whole Customer.
type event struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		Metadata struct {
			Name       string `json:"name"`
			Namespace  string `json:"namespace"`
			Generation int64  `json:"generation"`
		} `json:"metadata"`
		Spec struct {
			Provider    string `json:"provider"`
			ExternalID  string `json:"externalID"`
			DisplayName string `json:"displayName"`
			Lifecycle   string `json:"lifecycle"`
		} `json:"spec"`
	} `json:"data"`
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	if err := verify(r.key, req.Header, body, time.Now(), r.tolerance); err != nil {
		log.Printf("receiver: rejected %s from %s: %v", req.Header.Get("webhook-id"), req.RemoteAddr, err)
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "body is not a JSON event", http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	if !r.seen.add(id) {
		// Deliveries are at-least-once: a retry after a lost answer repeats the id.
		log.Printf("receiver: duplicate %s, already handled", id)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	m, s := ev.Data.Metadata, ev.Data.Spec
	log.Printf("receiver: %s %s/%s generation=%d provider=%q externalID=%q displayName=%q lifecycle=%s id=%s",
		ev.Type, m.Namespace, m.Name, m.Generation, s.Provider, s.ExternalID, s.DisplayName, s.Lifecycle, id)
	w.WriteHeader(http.StatusNoContent)
}

func decodeSecret(secret string) ([]byte, error) {
	if !strings.HasPrefix(secret, "whsec_") {
		return nil, errors.New(`want a Standard Webhooks secret "whsec_<base64>"`)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return nil, fmt.Errorf("decoding the base64 after whsec_: %w", err)
	}
	return key, nil
}

// verify checks a Standard Webhooks signature: HMAC-SHA256, keyed with the bytes the
// whsec_ secret encodes, over "{webhook-id}.{webhook-timestamp}.{body}". The header may
// carry several space-separated "v1,<base64>" signatures (the sender signs with the old
// and the new secret during a rotation); one match is enough.
func verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	// The timestamp is signed, so bounding it stops a captured request being replayed later.
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp %s is outside the tolerance of %s", ts, tolerance)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		version, b64, _ := strings.Cut(sig, ",")
		got, err := base64.StdEncoding.DecodeString(b64)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching v1 signature in webhook-signature")
}

// seenSet remembers the last n webhook-ids, oldest forgotten first, so memory stays
// bounded however long the receiver runs.
type seenSet struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string
	next  int
}

func newSeenSet(n int) *seenSet {
	return &seenSet{ids: make(map[string]struct{}, n), order: make([]string, n)}
}

// add records id and reports whether it was new.
func (s *seenSet) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	delete(s.ids, s.order[s.next])
	s.order[s.next] = id
	s.next = (s.next + 1) % len(s.order)
	s.ids[id] = struct{}{}
	return true
}
