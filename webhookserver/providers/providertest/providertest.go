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

// Package providertest is the conformance suite every provider package runs from
// its tests. A provider supplies a Suite (its provider, which also simulates the
// sender, a Secret, fixtures with the events they decode to, and its rejections)
// and gets the provider-level rows of the answers table checked against real
// signed, and where the provider encrypts, encrypted requests: authentication,
// signed timestamps, malformed bodies, customer events without an id, ignored
// events, key rotation, duplicates, Secret validation, and fuzzing. What is left
// in a provider package is what only that provider has: its field mapping
// details, envelope and signature variants, and its wire format checked against
// an implementation written independently of its simulator.
package providertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// DefaultNow is the requests' clock when a Suite sets none: a fixed instant, so a
// failure reproduces.
var DefaultNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Suite describes one provider to the conformance suite.
type Suite struct {
	// Provider is the provider under test.
	Provider providers.Provider
	// Simulator signs (and encrypts) as the provider's sender does. When nil, the
	// Provider must implement providers.Simulator itself.
	Simulator providers.Simulator

	// Secret is a Secret the Simulator signs with and Parse accepts.
	Secret map[string][]byte
	// WrongSecret has the shape of Secret but other values: what a sender
	// configured for another source, or a guesser, signs with.
	WrongSecret map[string][]byte
	// Unauthorized is the status of a failed authentication; zero means 401.
	Unauthorized int
	// SignsBody says the credentials cover the body, so a body changed after
	// signing is refused. False for credentials carried in headers alone.
	SignsBody bool
	// SignsTime says the provider signs a timestamp, to which the tolerance applies.
	SignsTime bool
	// SignRaw, when set, authenticates a body exactly as given, bypassing any
	// transformation the Simulator applies (encryption, an envelope), so fuzzing
	// reaches the decoder with arbitrary bodies.
	SignRaw func(body []byte, secret map[string][]byte) http.Header

	// Rotations are credential changes that the Secret's previous* keys bridge.
	Rotations []Rotation
	// Fixtures are payloads and what they decode to: customer events (compared in
	// full, mapping included) and the count of ignored ones. At least one must
	// carry a customer event.
	Fixtures []Fixture
	// Rejected are payloads Parse must refuse although authentic: malformed
	// bodies and customer events without a required field. At least one must be
	// a customer event without the provider's customer id.
	Rejected []Rejection
	// Secrets are ValidateSecret cases beyond Secret (valid) and the empty Secret.
	Secrets []SecretCase
	// FuzzSeeds are extra seeds for Fuzz, beside the fixtures and rejections.
	FuzzSeeds []Seed

	// Now is the requests' clock; zero means DefaultNow.
	Now time.Time
}

// Rotation is a change of credentials, from the Secret Old to the Secret New.
// During the rotation the Secret is New plus Old's changed values under their
// previous* keys.
type Rotation struct {
	Name     string
	Old, New map[string][]byte
}

// Fixture is an authentic payload and what it decodes to.
type Fixture struct {
	Name string
	// Plaintext is the payload before signing (and encryption).
	Plaintext []byte
	// Want are the customer events, in order, complete with their mapped Customer.
	Want []providers.Event
	// Ignored is the number of valid events that are not customer events.
	Ignored int
}

// Rejection is an authentic payload that Parse refuses.
type Rejection struct {
	Name      string
	Plaintext []byte
	// Status defaults to 400.
	Status int
	// Reason is one of the providers.Reason constants.
	Reason string
	// Field is the field the answer names, "" for a body that is not JSON at all.
	Field string
}

// Seed is a fuzz input: a payload, and a value for the credential headers.
type Seed struct {
	Plaintext []byte
	Header    string
}

// SecretCase is a Secret and what ValidateSecret says of it.
type SecretCase struct {
	Name string
	Data map[string][]byte
	// WantErr is a text the error must contain (the key it names); "" means valid.
	WantErr string
}

// Testdata reads the calling provider package's sample event name from
// config/samples/events/<package>/: the one copy that the tests, the samples and
// hack/sendevent share.
func Testdata(tb testing.TB, name string) []byte {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(SampleEvents(tb), filepath.Base(dir), name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// SampleEvents is the directory of the sample events, config/samples/events,
// found from the calling package's directory up to the module's root.
func SampleEvents(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "config", "samples", "events")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// SecretData builds a Secret's data from key, value pairs.
func SecretData(kv ...string) map[string][]byte {
	m := make(map[string][]byte, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

// RawRequest is a request with the given body and header pairs, as a sender that
// does its own signing sends it.
func RawRequest(body []byte, secret map[string][]byte, now time.Time, headers ...string) *providers.Request {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		h.Set(headers[i], headers[i+1])
	}
	return &providers.Request{Header: h, Body: body, Secret: secret, Now: now, Tolerance: providers.DefaultTolerance}
}

// Signed is a request carrying plaintext as sim sends it, signed with secret at
// now and verified against the same Secret.
func Signed(tb testing.TB, sim providers.Simulator, plaintext []byte, secret map[string][]byte, now time.Time) *providers.Request {
	tb.Helper()
	body, h, err := sim.Prepare(plaintext, secret, now)
	if err != nil {
		tb.Fatalf("Prepare: %v", err)
	}
	return &providers.Request{Header: h, Body: body, Secret: secret, Now: now, Tolerance: providers.DefaultTolerance}
}

// Parse parses req and fails the test on an error.
func Parse(tb testing.TB, p providers.Provider, req *providers.Request) *providers.Result {
	tb.Helper()
	res, err := p.Parse(req)
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return res
}

// ParseOne parses req and fails the test unless it carries exactly one customer
// event and nothing else.
func ParseOne(tb testing.TB, p providers.Provider, req *providers.Request) providers.Event {
	tb.Helper()
	res := Parse(tb, p, req)
	if len(res.Events) != 1 || res.Ignored != 0 {
		tb.Fatalf("Parse = %d events, %d ignored; want 1, 0", len(res.Events), res.Ignored)
	}
	return res.Events[0]
}

// ExpectError checks that err is the *providers.Error want describes (status,
// reason and field) and that its message holds none of the secrets' values.
func ExpectError(tb testing.TB, err error, want providers.Error, secrets ...map[string][]byte) {
	tb.Helper()
	var perr *providers.Error
	if !errors.As(err, &perr) {
		tb.Fatalf("Parse error = %v (%T), want a *providers.Error", err, err)
	}
	if perr.Status != want.Status || perr.Reason != want.Reason || perr.Field != want.Field {
		tb.Errorf("error = {%d %s %q} %q, want {%d %s %q}", perr.Status, perr.Reason, perr.Field, perr.Message, want.Status, want.Reason, want.Field)
	}
	if perr.Message == "" {
		tb.Error("error without a message")
	}
	for _, data := range secrets {
		for k, v := range data {
			if v = bytes.TrimSpace(v); len(v) >= 4 && strings.Contains(perr.Error(), string(v)) {
				tb.Errorf("error message holds the value of secret key %q: %q", k, perr.Error())
			}
		}
	}
}

// AssertEvent compares an event with the expected one, the Customer field by field.
func AssertEvent(tb testing.TB, got, want providers.Event) {
	tb.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Action != want.Action {
		tb.Errorf("event = {id %q, type %q, action %q}, want {%q %q %q}", got.ID, got.Type, got.Action, want.ID, want.Type, want.Action)
	}
	if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		tb.Errorf("event time = %v, want %v in UTC", got.Time, want.Time.UTC())
	}
	AssertSpec(tb, got.Customer, want.Customer)
}

// AssertSpec compares two Customer specs field by field, naming each that differs.
func AssertSpec(tb testing.TB, got, want crmv1alpha1.CustomerSpec) {
	tb.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		if g, w := gv.Field(i).Interface(), wv.Field(i).Interface(); !reflect.DeepEqual(g, w) {
			gj, _ := json.Marshal(g)
			wj, _ := json.Marshal(w)
			tb.Errorf("spec.%s = %s, want %s", gv.Type().Field(i).Name, gj, wj)
		}
	}
}

// CheckEvent checks what every decoded event must hold, whatever the payload: the
// ingest path relies on these to name, order and de-duplicate, and to name the
// sender's field when it refuses the event.
func CheckEvent(tb testing.TB, p providers.Provider, ev providers.Event) {
	tb.Helper()
	if ev.ID == "" {
		tb.Errorf("event without an id: %+v", ev)
	}
	if ev.Customer.Provider != p.Name() || ev.Customer.ExternalID == "" {
		tb.Errorf("event customer = {provider %q, externalID %q}, want provider %q and an id", ev.Customer.Provider, ev.Customer.ExternalID, p.Name())
	}
	if ev.Action != providers.ActionUpsert && ev.Action != providers.ActionDelete {
		tb.Errorf("event action = %q", ev.Action)
	}
	if ev.Time.Location() != time.UTC {
		tb.Errorf("event time %v is not in UTC", ev.Time)
	}
	// The ingest path refuses an event from the future naming this field.
	if ev.Fields.Time == "" {
		tb.Errorf("event %q does not name the field its time came from", ev.ID)
	}
}

func (s *Suite) now() time.Time {
	if s.Now.IsZero() {
		return DefaultNow
	}
	return s.Now
}

func (s *Suite) unauthorized() providers.Error {
	st := s.Unauthorized
	if st == 0 {
		st = http.StatusUnauthorized
	}
	return providers.Error{Status: st, Reason: providers.ReasonUnauthorized}
}

func (s *Suite) simulator(tb testing.TB) providers.Simulator {
	tb.Helper()
	if s.Simulator != nil {
		return s.Simulator
	}
	sim, ok := s.Provider.(providers.Simulator)
	if !ok {
		tb.Fatalf("%T implements no providers.Simulator and the Suite sets none", s.Provider)
	}
	return sim
}

// secrets are every Secret the suite signs or verifies with, for the check that no
// answer holds a secret value.
func (s *Suite) secrets() []map[string][]byte {
	out := []map[string][]byte{s.Secret, s.WrongSecret}
	for _, r := range s.Rotations {
		out = append(out, r.Old, r.New)
	}
	for _, c := range s.Secrets {
		out = append(out, c.Data)
	}
	return out
}

// withEvents are the fixtures that carry customer events.
func (s *Suite) withEvents() []Fixture {
	var out []Fixture
	for _, fx := range s.Fixtures {
		if len(fx.Want) > 0 {
			out = append(out, fx)
		}
	}
	return out
}

// first is the first fixture with a customer event, the payload most rows send.
func (s *Suite) first() Fixture {
	if fxs := s.withEvents(); len(fxs) > 0 {
		return fxs[0]
	}
	return Fixture{}
}

// complete refuses a Suite that leaves out what every provider must show, so a new
// provider cannot pass by supplying less.
func (s *Suite) complete(tb testing.TB) {
	tb.Helper()
	switch {
	case s.Provider == nil:
		tb.Fatal("Suite.Provider is nil")
	case len(s.Secret) == 0 || len(s.WrongSecret) == 0:
		tb.Fatal("Suite.Secret and Suite.WrongSecret are required")
	case len(s.first().Want) == 0:
		tb.Fatal("Suite.Fixtures has no payload with a customer event")
	case len(s.Rotations) == 0:
		tb.Fatal("Suite.Rotations is empty: show that the Secret's keys rotate")
	case !slices.ContainsFunc(s.Rejected, func(r Rejection) bool { return r.Reason == providers.ReasonMissingField }):
		tb.Fatal("Suite.Rejected has no customer event without the provider's customer id")
	}
	s.simulator(tb)
}

// Run runs the conformance suite.
func Run(t *testing.T, s Suite) {
	t.Helper()
	s.complete(t)
	t.Run("Fixtures", s.testFixtures)
	t.Run("Duplicates", s.testDuplicates)
	t.Run("Unauthenticated", s.testUnauthenticated)
	if _, ok := s.Provider.(providers.HeaderAuthenticator); ok {
		t.Run("HeaderAuthenticator", s.testHeaderAuthenticator)
	}
	t.Run("Timestamp", s.testTimestamp)
	t.Run("Malformed", s.testMalformed)
	t.Run("EventLimit", s.testEventLimit)
	t.Run("Rotation", s.testRotation)
	t.Run("ValidateSecret", s.testValidateSecret)
	t.Run("Simulator", s.testSimulator)
}

// testFixtures: valid requests decode into events with ids, times, actions and the
// mapped Customer; payloads without customer events are ignored (answered 204).
func (s *Suite) testFixtures(t *testing.T) {
	sim := s.simulator(t)
	for _, fx := range s.Fixtures {
		t.Run(fx.Name, func(t *testing.T) {
			res := Parse(t, s.Provider, Signed(t, sim, fx.Plaintext, s.Secret, s.now()))
			if len(res.Events) != len(fx.Want) || res.Ignored != fx.Ignored {
				t.Fatalf("Parse = %d events, %d ignored; want %d, %d", len(res.Events), res.Ignored, len(fx.Want), fx.Ignored)
			}
			for i, ev := range res.Events {
				CheckEvent(t, s.Provider, ev)
				AssertEvent(t, ev, fx.Want[i])
			}
		})
	}
}

// testDuplicates: a provider's retry of a delivery (signed anew, at another time,
// for Phasio under a fresh nonce) decodes to the same event ids and times, so the
// ingest path recognises it; and Parse leaves the request as it found it.
func (s *Suite) testDuplicates(t *testing.T) {
	sim := s.simulator(t)
	for _, fx := range s.withEvents() {
		t.Run(fx.Name, func(t *testing.T) {
			first := Signed(t, sim, fx.Plaintext, s.Secret, s.now())
			body := bytes.Clone(first.Body)
			a := Parse(t, s.Provider, first)
			if !bytes.Equal(first.Body, body) {
				t.Error("Parse modified the request body")
			}
			again := Parse(t, s.Provider, first)
			if !reflect.DeepEqual(a, again) {
				t.Errorf("the same request parsed twice differs:\n%+v\n%+v", a, again)
			}
			retryAt := s.now().Add(time.Minute)
			retry := Signed(t, sim, fx.Plaintext, s.Secret, retryAt)
			retry.Now = retryAt
			b := Parse(t, s.Provider, retry)
			if len(a.Events) != len(b.Events) {
				t.Fatalf("retry decodes to %d events, the first delivery to %d", len(b.Events), len(a.Events))
			}
			for i := range a.Events {
				if a.Events[i].ID != b.Events[i].ID || !a.Events[i].Time.Equal(b.Events[i].Time) {
					t.Errorf("retry event %d = {%q %v}, first delivery {%q %v}", i, b.Events[i].ID, b.Events[i].Time, a.Events[i].ID, a.Events[i].Time)
				}
			}
		})
	}
}

// credentialHeaders are the headers the Simulator sets beyond Content-Type: the
// signature or credentials of the provider's scheme.
func credentialHeaders(h http.Header) []string {
	var out []string
	for k := range h {
		if k != "Content-Type" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

type namedRequest struct {
	name string
	req  *providers.Request
}

// forged are requests without valid credentials: missing, wrong or garbled ones,
// a Secret without any, and (for signed bodies) a body changed after signing.
func (s *Suite) forged(t *testing.T) []namedRequest {
	t.Helper()
	sim := s.simulator(t)
	plain := s.first().Plaintext
	good := Signed(t, sim, plain, s.Secret, s.now())
	creds := credentialHeaders(good.Header)
	if len(creds) == 0 {
		t.Fatal("the Simulator sends no credentials")
	}
	without := func(names ...string) *providers.Request {
		r := *good
		r.Header = good.Header.Clone()
		for _, n := range names {
			r.Header.Del(n)
		}
		return &r
	}
	out := []namedRequest{{"no credentials", without(creds...)}}
	for _, h := range creds {
		garbled := without()
		garbled.Header.Set(h, "garbled")
		out = append(out, namedRequest{"without " + h, without(h)}, namedRequest{"garbled " + h, garbled})
	}
	wrong := Signed(t, sim, plain, s.WrongSecret, s.now())
	wrong.Secret = s.Secret
	out = append(out, namedRequest{"wrong secret", wrong})
	for name, data := range map[string]map[string][]byte{"nil secret": nil, "empty secret": {}} {
		r := without()
		r.Secret = data
		out = append(out, namedRequest{name, r})
	}
	if !s.SignsBody {
		return out
	}
	changed := without()
	changed.Body = bytes.Clone(good.Body)
	if i := len(changed.Body) / 2; changed.Body[i] == 'A' {
		changed.Body[i] = 'B'
	} else {
		changed.Body[i] = 'A'
	}
	other := without()
	other.Header = Signed(t, sim, []byte(`{"other":true}`), s.Secret, s.now()).Header
	return append(out, namedRequest{"body changed after signing", changed}, namedRequest{"credentials of another body", other})
}

// testUnauthenticated: every forged request is the provider's unauthorized
// answer, whose message holds no secret.
func (s *Suite) testUnauthenticated(t *testing.T) {
	for _, f := range s.forged(t) {
		t.Run(f.name, func(t *testing.T) {
			res, err := s.Provider.Parse(f.req)
			if err == nil {
				t.Fatalf("Parse accepted the request: %d events", len(res.Events))
			}
			ExpectError(t, err, s.unauthorized(), s.secrets()...)
		})
	}
}

// testHeaderAuthenticator: a provider that checks header credentials before the
// body is read agrees with its own Parse. It never refuses a request Parse
// accepts; it refuses with the same answer; it never calls a request complete
// that Parse refuses; and where the credentials are headers alone (the body is
// not signed), it decides every request itself.
func (s *Suite) testHeaderAuthenticator(t *testing.T) {
	ha := s.Provider.(providers.HeaderAuthenticator)
	sim := s.simulator(t)
	plain := s.first().Plaintext
	valid := []namedRequest{{"suite secret", Signed(t, sim, plain, s.Secret, s.now())}}
	for _, rot := range s.Rotations {
		old := Signed(t, sim, plain, rot.Old, s.now())
		old.Secret = rot.during(t)
		valid = append(valid, namedRequest{"rotation " + rot.Name + ", old credentials", old})
	}
	for _, c := range s.Secrets {
		if c.WantErr == "" {
			valid = append(valid, namedRequest{"secret " + c.Name, Signed(t, sim, plain, c.Data, s.now())})
		}
	}
	for _, v := range valid {
		t.Run(v.name, func(t *testing.T) {
			if _, err := s.Provider.Parse(v.req); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			complete, err := ha.AuthenticateHeader(v.req.Header, v.req.Secret)
			if err != nil {
				t.Fatalf("AuthenticateHeader refused a request Parse accepts: %v", err)
			}
			if !s.SignsBody && !complete {
				t.Error("AuthenticateHeader left a header-authenticated request to the body")
			}
		})
	}
	for _, f := range s.forged(t) {
		t.Run(f.name, func(t *testing.T) {
			complete, err := ha.AuthenticateHeader(f.req.Header, f.req.Secret)
			switch {
			case err != nil:
				ExpectError(t, err, s.unauthorized(), s.secrets()...)
			case complete:
				t.Error("AuthenticateHeader accepted as complete a request Parse refuses")
			case !s.SignsBody:
				t.Error("AuthenticateHeader left a header-authenticated request to the body")
			}
		})
	}
}

// testTimestamp: where the provider signs a time, a delivery outside the tolerance
// (either way) is refused as a timestamp rejection, and only an authentic one:
// a wrongly signed old delivery is plainly unauthorized. Where it signs none, the
// clock does not matter (retries are caught as duplicates instead).
func (s *Suite) testTimestamp(t *testing.T) {
	sim := s.simulator(t)
	plain := s.first().Plaintext
	now := s.now()
	send := func(signedAt time.Time, tolerance time.Duration, secret map[string][]byte) error {
		r := Signed(t, sim, plain, secret, signedAt)
		r.Secret, r.Now, r.Tolerance = s.Secret, now, tolerance
		_, err := s.Provider.Parse(r)
		return err
	}
	if !s.SignsTime {
		if err := send(now.Add(-24*time.Hour), time.Minute, s.Secret); err != nil {
			t.Errorf("a day-old delivery of a provider that signs no time: %v", err)
		}
		return
	}
	expired := s.unauthorized()
	expired.Reason = providers.ReasonTimestamp
	for _, tc := range []struct {
		name      string
		at        time.Duration
		tolerance time.Duration
		ok        bool
	}{
		{"just inside", -5 * time.Minute, 5 * time.Minute, true},
		{"expired", -10 * time.Minute, 5 * time.Minute, false},
		{"from the future", 6 * time.Minute, 5 * time.Minute, false},
		{"wider tolerance", -10 * time.Minute, time.Hour, true},
		{"default tolerance, inside", -4 * time.Minute, 0, true},
		{"default tolerance, expired", -6 * time.Minute, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := send(now.Add(tc.at), tc.tolerance, s.Secret)
			if tc.ok {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			ExpectError(t, err, expired, s.secrets()...)
		})
	}
	t.Run("expired and wrongly signed", func(t *testing.T) {
		ExpectError(t, send(now.Add(-time.Hour), 5*time.Minute, s.WrongSecret), s.unauthorized(), s.secrets()...)
	})
}

// testMalformed: an authentic body that does not parse, or a customer event
// without a required field, is a 400 naming the field.
func (s *Suite) testMalformed(t *testing.T) {
	sim := s.simulator(t)
	cases := []Rejection{
		{Name: "empty body", Plaintext: []byte{}, Reason: providers.ReasonMalformed},
		{Name: "not JSON", Plaintext: []byte(`{"id":`), Reason: providers.ReasonMalformed},
		{Name: "not an object", Plaintext: []byte(`[]`), Reason: providers.ReasonMalformed},
	}
	for _, rej := range append(cases, s.Rejected...) {
		t.Run(rej.Name, func(t *testing.T) {
			status := rej.Status
			if status == 0 {
				status = http.StatusBadRequest
			}
			res, err := s.Provider.Parse(Signed(t, sim, rej.Plaintext, s.Secret, s.now()))
			if err == nil {
				t.Fatalf("Parse accepted the payload: %d events, %d ignored", len(res.Events), res.Ignored)
			}
			ExpectError(t, err, providers.Error{Status: status, Reason: rej.Reason, Field: rej.Field}, s.secrets()...)
		})
	}
}

// testEventLimit: a request carrying exactly MaxEvents events (customer events or
// not) decodes; one more and it is refused as too_many_events (413), whichever
// fixture carries them. Providers whose requests carry one event show the first
// half only, as a limit of one.
func (s *Suite) testEventLimit(t *testing.T) {
	sim := s.simulator(t)
	for _, fx := range s.Fixtures {
		n := len(fx.Want) + fx.Ignored
		if n == 0 {
			continue
		}
		t.Run(fx.Name, func(t *testing.T) {
			req := Signed(t, sim, fx.Plaintext, s.Secret, s.now())
			req.MaxEvents = n
			res := Parse(t, s.Provider, req)
			if len(res.Events) != len(fx.Want) || res.Ignored != fx.Ignored {
				t.Fatalf("Parse with MaxEvents %d = %d events, %d ignored; want %d, %d", n, len(res.Events), res.Ignored, len(fx.Want), fx.Ignored)
			}
			if n == 1 {
				return
			}
			req.MaxEvents = n - 1
			res, err := s.Provider.Parse(req)
			if err == nil {
				t.Fatalf("Parse with MaxEvents %d accepted %d events, %d ignored", n-1, len(res.Events), res.Ignored)
			}
			var perr *providers.Error
			if !errors.As(err, &perr) || perr.Status != http.StatusRequestEntityTooLarge || perr.Reason != providers.ReasonTooManyEvents || perr.Message == "" {
				t.Fatalf("Parse with MaxEvents %d: error %v, want a 413 %s", n-1, err, providers.ReasonTooManyEvents)
			}
		})
	}
}

// during is the Secret in the middle of a rotation: the new values, with the old
// ones under their previous* keys.
func (r Rotation) during(tb testing.TB) map[string][]byte {
	tb.Helper()
	out := maps.Clone(r.New)
	changed := 0
	for k, old := range r.Old {
		if bytes.Equal(old, r.New[k]) {
			continue
		}
		prev := providers.PreviousKey(k)
		if prev == "" {
			tb.Fatalf("rotation %s changes %q, which has no previous key", r.Name, k)
		}
		out[prev] = old
		changed++
	}
	if changed == 0 {
		tb.Fatalf("rotation %s changes nothing", r.Name)
	}
	return out
}

// testRotation: during a rotation both the old and the new credentials verify;
// once the previous key is removed, the old ones stop verifying.
func (s *Suite) testRotation(t *testing.T) {
	sim := s.simulator(t)
	plain := s.first().Plaintext
	for _, rot := range s.Rotations {
		t.Run(rot.Name, func(t *testing.T) {
			during := rot.during(t)
			for name, data := range map[string]map[string][]byte{"new": rot.New, "during": during} {
				if err := s.Provider.ValidateSecret(data); err != nil {
					t.Errorf("ValidateSecret(%s) = %v", name, err)
				}
			}
			send := func(sender, verifier map[string][]byte) error {
				r := Signed(t, sim, plain, sender, s.now())
				r.Secret = verifier
				_, err := s.Provider.Parse(r)
				return err
			}
			if err := send(rot.Old, during); err != nil {
				t.Errorf("old credentials during the rotation: %v", err)
			}
			if err := send(rot.New, during); err != nil {
				t.Errorf("new credentials during the rotation: %v", err)
			}
			if err := send(rot.New, rot.New); err != nil {
				t.Errorf("new credentials after the rotation: %v", err)
			}
			ExpectError(t, send(rot.Old, rot.New), s.unauthorized(), s.secrets()...)
		})
	}
}

// testValidateSecret: ValidateSecret decides whether a source is Ready. It accepts
// the Suite's Secret (with the trailing newline `kubectl create secret
// --from-file` leaves) and refuses an empty one or one with only previous* keys,
// naming the key, never a value. A Secret it accepts authenticates the
// Simulator's requests, so a Ready source is never one that refuses everything.
func (s *Suite) testValidateSecret(t *testing.T) {
	sim := s.simulator(t)
	plain := s.first().Plaintext
	newline := make(map[string][]byte, len(s.Secret))
	previousOnly := make(map[string][]byte, len(s.Secret))
	for k, v := range s.Secret {
		newline[k] = append(bytes.Clone(v), '\n')
		if prev := providers.PreviousKey(k); prev != "" {
			k = prev
		}
		previousOnly[k] = v
	}
	// anyKey stands for "names one of the Suite Secret's keys" in the cases below.
	const anyKey = "\x00any key"
	cases := []SecretCase{
		{Name: "suite secret", Data: s.Secret},
		{Name: "trailing newline", Data: newline},
		{Name: "nil", Data: nil, WantErr: anyKey},
		{Name: "empty", Data: map[string][]byte{}, WantErr: anyKey},
		{Name: "previous keys only", Data: previousOnly, WantErr: anyKey},
	}
	for _, c := range append(cases, s.Secrets...) {
		t.Run(c.Name, func(t *testing.T) {
			err := s.Provider.ValidateSecret(c.Data)
			if c.WantErr != "" {
				if err == nil {
					t.Fatal("ValidateSecret accepted the Secret")
				}
				named := strings.Contains(err.Error(), c.WantErr)
				if c.WantErr == anyKey {
					for k := range s.Secret {
						named = named || strings.Contains(err.Error(), `"`+k+`"`)
					}
				}
				if !named {
					t.Fatalf("ValidateSecret = %v, want an error naming %q", err, c.WantErr)
				}
				for k, v := range c.Data {
					if len(v) > 0 && strings.Contains(err.Error(), string(v)) {
						t.Errorf("error holds the value of key %q: %v", k, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateSecret = %v", err)
			}
			r := Signed(t, sim, plain, c.Data, s.now())
			if _, err := s.Provider.Parse(r); err != nil {
				t.Errorf("a request signed with a valid Secret: %v", err)
			}
			if c.Name == "trailing newline" {
				r := Signed(t, sim, plain, s.Secret, s.now())
				r.Secret = c.Data
				if _, err := s.Provider.Parse(r); err != nil {
					t.Errorf("a Secret value with a trailing newline: %v", err)
				}
			}
		})
	}
}

// testSimulator: the simulator sends JSON, and refuses a Secret it cannot sign with
// rather than sending an unauthenticated request.
func (s *Suite) testSimulator(t *testing.T) {
	sim := s.simulator(t)
	_, h, err := sim.Prepare(s.first().Plaintext, s.Secret, s.now())
	if err != nil {
		t.Fatal(err)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, data := range []map[string][]byte{nil, {}} {
		if _, _, err := sim.Prepare(s.first().Plaintext, data, s.now()); err == nil {
			t.Errorf("Prepare with Secret %v succeeded", data)
		}
	}
}

// Fuzz fuzzes the provider's Parse, seeded with the Suite's fixtures, rejections
// and FuzzSeeds. Each input is sent signed by the Simulator, with its credential
// headers replaced by the fuzzed header value, and (with SignRaw) signed as it
// stands. Parse must not panic; an error must be a *providers.Error with a 4xx
// status, and an event must hold what CheckEvent checks.
func Fuzz(f *testing.F, s Suite) {
	f.Helper()
	s.complete(f)
	sim := s.simulator(f)
	for _, fx := range s.Fixtures {
		f.Add(fx.Plaintext, "")
	}
	for _, r := range s.Rejected {
		f.Add(r.Plaintext, "")
	}
	for _, seed := range s.FuzzSeeds {
		f.Add(seed.Plaintext, seed.Header)
	}
	now := s.now()
	f.Fuzz(func(t *testing.T, plaintext []byte, header string) {
		check := func(req *providers.Request) {
			res, err := s.Provider.Parse(req)
			if err != nil {
				var perr *providers.Error
				if !errors.As(err, &perr) || perr.Status < 400 || perr.Status > 499 {
					t.Fatalf("Parse error %v (%T) is not a 4xx *providers.Error", err, err)
				}
				return
			}
			for _, ev := range res.Events {
				CheckEvent(t, s.Provider, ev)
			}
		}
		body, h, err := sim.Prepare(plaintext, s.Secret, now)
		if err != nil {
			t.Fatal(err)
		}
		check(&providers.Request{Header: h, Body: body, Secret: s.Secret, Now: now})
		forged := h.Clone()
		for _, k := range credentialHeaders(h) {
			forged.Set(k, header)
		}
		check(&providers.Request{Header: forged, Body: plaintext, Secret: s.Secret, Now: now})
		if s.SignRaw != nil {
			check(&providers.Request{Header: s.SignRaw(plaintext, s.Secret), Body: plaintext, Secret: s.Secret, Now: now})
		}
	})
}

// BenchParse benchmarks Parse on each fixture with customer events, signed as the
// Simulator sends it: verification, decryption and decoding included.
func BenchParse(b *testing.B, s Suite) {
	sim := s.simulator(b)
	for _, fx := range s.withEvents() {
		b.Run(fx.Name, func(b *testing.B) {
			req := Signed(b, sim, fx.Plaintext, s.Secret, s.now())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Provider.Parse(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchUnmarshalBaseline is BenchParse's baseline: a bare json.Unmarshal of the
// same plaintexts into map[string]any.
func BenchUnmarshalBaseline(b *testing.B, s Suite) {
	for _, fx := range s.withEvents() {
		b.Run(fx.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(fx.Plaintext, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
