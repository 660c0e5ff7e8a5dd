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

package providers

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestSecretValues(t *testing.T) {
	data := map[string][]byte{
		"secret":           []byte("current\n"),
		"previousSecret":   []byte("old"),
		"password":         []byte(""),
		"previousPassword": []byte("oldpass"),
		"token":            []byte("tok\r\n"),
	}
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{KeySecret, []string{"current", "old"}},
		{KeyPassword, []string{"oldpass"}},
		{KeyToken, []string{"tok"}},
		{KeyUsername, nil},
	} {
		got := SecretValues(data, tc.key)
		if len(got) != len(tc.want) {
			t.Errorf("SecretValues(%q) = %q, want %q", tc.key, got, tc.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Errorf("SecretValues(%q)[%d] = %q, want %q", tc.key, i, got[i], tc.want[i])
			}
		}
	}
	if PreviousKey(KeyUsername) != "" {
		t.Error("username has no rotation counterpart")
	}
}

func TestMatchHMAC(t *testing.T) {
	keys := [][]byte{[]byte("k1"), []byte("k2")}
	m := hmac.New(sha256.New, []byte("k2"))
	m.Write([]byte("123.body"))
	want := m.Sum(nil)
	if got := MatchHMAC([][]byte{{1, 2}, want}, keys, []byte("123"), []byte("."), []byte("body")); got != 1 {
		t.Errorf("MatchHMAC = %d, want 1 (second key, parts concatenated)", got)
	}
	if got := MatchHMAC([][]byte{want}, keys[:1], []byte("123.body")); got != -1 {
		t.Errorf("MatchHMAC with the wrong key = %d, want -1", got)
	}
	if got := MatchHMAC(nil, keys, []byte("x")); got != -1 {
		t.Errorf("MatchHMAC without signatures = %d", got)
	}
	if HMACSHA256Hex([]byte("k2"), []byte("123.body")) != hex.EncodeToString(want) {
		t.Error("HMACSHA256Hex differs from crypto/hmac")
	}
	for _, s := range []string{"", "abc", hex.EncodeToString(want)[:62] + "zz", hex.EncodeToString(want) + "00"} {
		if _, ok := DecodeHexMAC(s); ok {
			t.Errorf("DecodeHexMAC(%q) accepted", s)
		}
	}
}

func TestEqualAny(t *testing.T) {
	c := [][]byte{[]byte("alpha"), []byte("beta")}
	if !EqualAny([]byte("beta"), c) || EqualAny([]byte("gamma"), c) || EqualAny([]byte("bet"), c) || EqualAny([]byte("beta"), nil) {
		t.Error("EqualAny gave a wrong answer")
	}
}

func TestBasicAndBearer(t *testing.T) {
	h := http.Header{}
	h.Set("Authorization", "bAsIc "+base64.StdEncoding.EncodeToString([]byte("user:pa:ss")))
	if u, p, ok := BasicAuth(h); !ok || u != "user" || p != "pa:ss" {
		t.Errorf("BasicAuth = %q %q %v", u, p, ok)
	}
	data := map[string][]byte{"username": []byte("user"), "password": []byte("new"), "previousPassword": []byte("pa:ss")}
	if !VerifyBasic(h, data) {
		t.Error("VerifyBasic refused the previous password")
	}
	if VerifyBasic(h, map[string][]byte{"username": []byte("user"), "password": []byte("new")}) {
		t.Error("VerifyBasic accepted a wrong password")
	}
	if VerifyBasic(h, map[string][]byte{"password": []byte("pa:ss")}) {
		t.Error("VerifyBasic accepted without a configured username")
	}
	if BasicHeader([]byte("user"), []byte("pa:ss")) != "Basic "+base64.StdEncoding.EncodeToString([]byte("user:pa:ss")) {
		t.Error("BasicHeader")
	}
	h.Set("Authorization", "Bearer  tok ")
	if tok, ok := BearerToken(h); !ok || tok != "tok" {
		t.Errorf("BearerToken = %q %v", tok, ok)
	}
	if _, _, ok := BasicAuth(h); ok {
		t.Error("BasicAuth accepted a bearer header")
	}
	if !VerifyBearer(h, map[string][]byte{"token": []byte("x"), "previousToken": []byte("tok")}) {
		t.Error("VerifyBearer refused the previous token")
	}
	h.Set("Authorization", "Bearer ")
	if _, ok := BearerToken(h); ok {
		t.Error("BearerToken accepted an empty token")
	}
}

func TestDecodeBase64Key(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb, 0xff, 0x3e}, 11)[:32]
	for _, s := range []string{
		base64.URLEncoding.EncodeToString(key),
		base64.RawURLEncoding.EncodeToString(key),
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		" " + base64.URLEncoding.EncodeToString(key) + "\n",
	} {
		got, err := DecodeBase64Key(s)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("DecodeBase64Key(%q) = %x, %v", s, got, err)
		}
	}
	if _, err := DecodeBase64Key("a*b"); err == nil {
		t.Error("DecodeBase64Key accepted a non-Base64 key")
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"2025-01-10T08:00:00":            time.Date(2025, 1, 10, 8, 0, 0, 0, time.UTC),
		"2025-01-10T08:00:00.5":          time.Date(2025, 1, 10, 8, 0, 0, 5e8, time.UTC),
		"2021-07-15T12:48:39.000Z":       time.Date(2021, 7, 15, 12, 48, 39, 0, time.UTC),
		"2021-03-22T15:01:07+01:00":      time.Date(2021, 3, 22, 14, 1, 7, 0, time.UTC),
		"2021-03-22T13:58:45+00:00":      time.Date(2021, 3, 22, 13, 58, 45, 0, time.UTC),
		"2021-03-22 13:58:45":            time.Date(2021, 3, 22, 13, 58, 45, 0, time.UTC),
		"2021-03-22T13:58:45-0500":       time.Date(2021, 3, 22, 18, 58, 45, 0, time.UTC),
		"2021-03-22":                     time.Date(2021, 3, 22, 0, 0, 0, 0, time.UTC),
		"2021-03-22T14:01:07.737123456Z": time.Date(2021, 3, 22, 14, 1, 7, 737123456, time.UTC),
	} {
		got, err := ParseTime(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "22/03/2021", "1733267345"} {
		if _, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) accepted", in)
		}
	}
}

func TestWithinTolerance(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		at  time.Time
		tol time.Duration
		ok  bool
	}{
		{now, time.Minute, true},
		{now.Add(-time.Minute), time.Minute, true},
		{now.Add(-time.Minute - time.Second), time.Minute, false},
		{now.Add(time.Minute + time.Second), time.Minute, false},
		{now.Add(-4 * time.Minute), 0, true},
		{now.Add(-6 * time.Minute), 0, false},
	} {
		if got := WithinTolerance(tc.at, now, tc.tol); got != tc.ok {
			t.Errorf("WithinTolerance(%v, tol %v) = %v", now.Sub(tc.at), tc.tol, got)
		}
	}
}

func TestFlexString(t *testing.T) {
	var v struct {
		A, B, C, D, E FlexString
	}
	if err := json.Unmarshal([]byte(`{"A":"1733267345","B":1733267345,"C":null,"D":"caf\u00e9 \"x\"","E":-1.5}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != "1733267345" || v.B != "1733267345" || v.C != "" || v.D != `café "x"` || v.E != "-1.5" {
		t.Errorf("FlexString = %+v", v)
	}
	if n, ok := v.B.Int64(); !ok || n != 1733267345 {
		t.Errorf("Int64 = %d, %v", n, ok)
	}
	if _, ok := v.E.Int64(); ok {
		t.Error("Int64 accepted a fraction")
	}
	for _, in := range []string{`{"A":{}}`, `{"A":[1]}`, `{"A":true}`} {
		err := json.Unmarshal([]byte(in), &v)
		if e := JSONError(err, "data"); e.Status != 400 || e.Field != "data.A" {
			t.Errorf("Unmarshal(%s) = %v → %+v, want 400 naming data.A", in, err, e)
		}
	}
}

func TestJSONError(t *testing.T) {
	var v struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	e := JSONError(json.Unmarshal([]byte(`{"data":{"id":5}}`), &v), "")
	if e.Status != 400 || e.Reason != ReasonMalformed || e.Field != "data.id" {
		t.Errorf("type error → %+v", e)
	}
	e = JSONError(json.Unmarshal([]byte(`{"data":`), &v), "")
	if e.Status != 400 || e.Reason != ReasonMalformed || e.Field != "" {
		t.Errorf("syntax error → %+v", e)
	}
	if e := Expired("old"); e.Status != 401 || e.Reason != ReasonTimestamp {
		t.Errorf("Expired = %+v", e)
	}
	if e := DecryptFailed("no"); e.Status != 401 || e.Reason != ReasonDecrypt {
		t.Errorf("DecryptFailed = %+v", e)
	}
}

func TestSmallHelpers(t *testing.T) {
	if got := JoinNonEmpty(" ", "", "a", "", "b"); got != "a b" {
		t.Errorf("JoinNonEmpty = %q", got)
	}
	if JoinNonEmpty(",", "", "") != "" {
		t.Error("JoinNonEmpty of empties")
	}
	m := SetAttr(nil, "k", "")
	if m != nil {
		t.Error("SetAttr stored an empty value")
	}
	if m = SetAttr(m, "k", "v"); m["k"] != "v" {
		t.Error("SetAttr")
	}
	if MetaTime(time.Time{}) != nil || OptionalTime("") != nil || OptionalTime("garbage") != nil {
		t.Error("zero or unusable times must be absent")
	}
	if got := OptionalTime("2021-03-22T15:01:07+01:00"); got == nil || got.Location() != time.UTC {
		t.Errorf("OptionalTime = %v", got)
	}
	if RequestNow(&Request{}).IsZero() {
		t.Error("RequestNow without a clock")
	}
}
