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
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks published test vector.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vectorHeader(sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", sig)
	return h
}

func TestSignTestVector(t *testing.T) {
	key, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, vectorID, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("Sign = %s, want %s", got, vectorSignature)
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(vectorTimestamp, 0)
	body := []byte(vectorBody)
	otherKey := strings.Repeat("k", 32)
	otherSig := Sign([]byte(otherKey), vectorID, vectorTimestamp, body)

	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
		now    time.Time
		want   error // nil, or a sentinel
	}{
		{"vector", vectorHeader(vectorSignature), body, at, nil},
		{"vector among other entries", vectorHeader("v1a,AAAA " + otherSig + " " + vectorSignature), body, at, nil},
		{"within tolerance", vectorHeader(vectorSignature), body, at.Add(4 * time.Minute), nil},
		{"too old", vectorHeader(vectorSignature), body, at.Add(6 * time.Minute), ErrTimestamp},
		{"too new", vectorHeader(vectorSignature), body, at.Add(-6 * time.Minute), ErrTimestamp},
		{"tampered body", vectorHeader(vectorSignature), []byte(`{"test": 2432232315}`), at, ErrSignature},
		{"other key", vectorHeader(otherSig), body, at, ErrSignature},
		{"not base64", vectorHeader("v1,!!!"), body, at, ErrSignature},
		{"wrong version", vectorHeader(strings.Replace(vectorSignature, "v1,", "v2,", 1)), body, at, ErrSignature},
		{"missing signature", vectorHeader(""), body, at, ErrMissingHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(vectorSecret, tc.header, tc.body, 0, tc.now)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}

	h := vectorHeader(vectorSignature)
	h.Set("webhook-timestamp", "yesterday")
	if err := Verify(vectorSecret, h, body, 0, at); !errors.Is(err, ErrTimestamp) {
		t.Errorf("non-numeric timestamp: Verify = %v, want ErrTimestamp", err)
	}
	if err := Verify(vectorSecret, vectorHeader(vectorSignature), body, time.Hour, at.Add(30*time.Minute)); err != nil {
		t.Errorf("explicit tolerance: Verify = %v", err)
	}
	if err := Verify("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", vectorHeader(vectorSignature), body, 0, at); err == nil {
		t.Error("secret without whsec_: Verify accepted it")
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		wantLen  int // 0: want an error
	}{
		{"vector", vectorSecret, 24},
		{"trailing newline", vectorSecret + "\n", 24},
		{"32 bytes", "whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 32},
		{"unpadded", "whsec_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 32},
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0},
		{"other prefix", "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 0},
		{"empty", "", 0},
		{"prefix only", "whsec_", 0},
		{"not base64", "whsec_not base64 at all!!", 0},
		{"too short", "whsec_c2hvcnQ=", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := ParseSecret(tc.in)
			if tc.wantLen == 0 {
				if err == nil {
					t.Fatalf("ParseSecret accepted %q", tc.in)
				}
				if len(tc.in) > len("whsec_")+2 && strings.Contains(err.Error(), tc.in[len("whsec_"):]) {
					t.Fatalf("error repeats the secret: %v", err)
				}
				return
			}
			if err != nil || len(key) != tc.wantLen {
				t.Fatalf("ParseSecret = %d bytes, %v; want %d bytes", len(key), err, tc.wantLen)
			}
		})
	}
}
