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

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/delivery/deliverytest"
	"github.com/customer-operator/customer-operator/controllers/delivery/postgres"
	"github.com/customer-operator/customer-operator/test/postgrestest"
)

// loopback lets the senders reach the test's server and nothing else.
var loopback = delivery.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func configFor(srv *postgrestest.Server, table string) postgres.Config {
	return postgres.Config{
		Host: srv.Host, Port: uint16(srv.Port), Database: postgrestest.Database, //nolint:gosec // a port
		User: postgrestest.User, Password: postgrestest.Password, SSLMode: postgres.SSLDisable,
		ApplicationName: "postgres-sink-test",
		Schema:          "public", Table: table, MaxConns: 4, Timeout: 5 * time.Second,
	}
}

func newSender(t *testing.T, cfg postgres.Config, opts ...postgres.Option) *postgres.Sender {
	t.Helper()
	s, err := postgres.New(cfg, loopback, opts...)
	if err != nil {
		t.Fatalf("postgres.New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func customer(name string, uid types.UID, gen int64, spec crmv1alpha1.CustomerSpec) *crmv1alpha1.Customer {
	return &crmv1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: name, UID: uid, Generation: gen,
			Labels: map[string]string{"tier": "gold"}},
		Spec: spec,
	}
}

func upsert(c *crmv1alpha1.Customer) delivery.Event  { return delivery.NewEvent(c, false, time.Now()) }
func deleted(c *crmv1alpha1.Customer) delivery.Event { return delivery.NewEvent(c, true, time.Now()) }

func mustDeliver(t *testing.T, s *postgres.Sender, ev delivery.Event) {
	t.Helper()
	if res := s.Deliver(context.Background(), ev); res.Err != nil {
		t.Fatalf("delivering %s of %s: %v (refused=%v)", ev.Type, ev.Customer.Name, res.Err, res.Refused)
	}
}

// dbRow is what a test reads back of a row.
type dbRow struct {
	Namespace, Name               string
	Generation                    int64
	Provider, ExternalID, Display *string
	Email                         *string
	Lifecycle                     *string
	Spec, Labels                  string
	UpdatedAt                     time.Time
}

func readRow(t *testing.T, conn *pgx.Conn, table, uid string) (dbRow, bool) {
	t.Helper()
	var r dbRow
	err := conn.QueryRow(context.Background(), fmt.Sprintf(
		`SELECT namespace, name, generation, provider, external_id, display_name, email, lifecycle, spec::text, labels::text, updated_at
		 FROM public.%s WHERE uid = $1`, table), uid).Scan(
		&r.Namespace, &r.Name, &r.Generation, &r.Provider, &r.ExternalID, &r.Display, &r.Email, &r.Lifecycle, &r.Spec, &r.Labels, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return dbRow{}, false
	}
	if err != nil {
		t.Fatalf("reading row %s: %v", uid, err)
	}
	return r, true
}

func (r dbRow) String() string {
	return fmt.Sprintf("%s/%s gen=%d provider=%s externalID=%s displayName=%s email=%s lifecycle=%s spec=%s labels=%s updated=%s",
		r.Namespace, r.Name, r.Generation, str(r.Provider), str(r.ExternalID), str(r.Display), str(r.Email), str(r.Lifecycle),
		r.Spec, r.Labels, r.UpdatedAt.Format(time.RFC3339Nano))
}

func str(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}

func TestSenderCreatesTheTableAndKeepsOneRowPerCustomer(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	s := newSender(t, configFor(srv, "customers"))

	c := customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_1",
		DisplayName: "Acme", Email: "billing@acme.example", Lifecycle: crmv1alpha1.LifecycleActive})
	mustDeliver(t, s, upsert(c))
	r, ok := readRow(t, conn, "customers", "uid-1")
	if !ok {
		t.Fatal("no row after the upsert")
	}
	if r.Name != "acme" || r.Namespace != "tenant-a" || r.Generation != 1 || str(r.Display) != "Acme" ||
		str(r.Email) != "billing@acme.example" || str(r.ExternalID) != "cus_1" || str(r.Lifecycle) != "Active" {
		t.Fatalf("row = %s", r)
	}
	if !strings.Contains(r.Spec, `"displayName": "Acme"`) || r.Labels != `{"tier": "gold"}` {
		t.Fatalf("spec = %s, labels = %s", r.Spec, r.Labels)
	}

	c2 := c.DeepCopy()
	c2.Generation, c2.Spec.DisplayName = 2, "Acme Corp"
	mustDeliver(t, s, upsert(c2))
	if r, _ := readRow(t, conn, "customers", "uid-1"); r.Generation != 2 || str(r.Display) != "Acme Corp" {
		t.Fatalf("after the update: %s", r)
	}

	c3 := c2.DeepCopy()
	c3.Generation = 3
	mustDeliver(t, s, deleted(c3))
	if _, ok := readRow(t, conn, "customers", "uid-1"); ok {
		t.Fatal("the row is still there after the delete")
	}
}

func TestSenderIgnoresRedeliveriesAndOlderGenerations(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	s := newSender(t, configFor(srv, "customers"))

	v1 := customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{DisplayName: "v1"})
	v2 := v1.DeepCopy()
	v2.Generation, v2.Spec.DisplayName = 2, "v2"
	mustDeliver(t, s, upsert(v2))
	before, _ := readRow(t, conn, "customers", "uid-1")

	mustDeliver(t, s, upsert(v2)) // a redelivery
	mustDeliver(t, s, upsert(v1)) // a replayed older generation
	after, _ := readRow(t, conn, "customers", "uid-1")
	if after.String() != before.String() {
		t.Fatalf("the row changed:\n before %s\n after  %s", before, after)
	}

	// After a delete, a late upsert of an older generation does not bring the row back.
	v3 := v2.DeepCopy()
	v3.Generation = 3
	mustDeliver(t, s, deleted(v3))
	mustDeliver(t, s, upsert(v2))
	if r, ok := readRow(t, conn, "customers", "uid-1"); ok {
		t.Fatalf("a late upsert of generation 2 brought back the row deleted at 3: %s", r)
	}
	// A Customer deleted by lifecycle and then revived at a newer generation comes back.
	v4 := v2.DeepCopy()
	v4.Generation, v4.Spec.DisplayName = 4, "revived"
	mustDeliver(t, s, upsert(v4))
	if r, ok := readRow(t, conn, "customers", "uid-1"); !ok || str(r.Display) != "revived" {
		t.Fatalf("generation 4 after the delete at 3: %s, %v", r, ok)
	}
}

// Concurrent deliveries share batches, where distinct Customers' upserts go
// as one statement: the guards hold there as they do for one delivery alone.
func TestSenderKeepsGenerationsAndTombstonesForConcurrentDeliveries(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	s := newSender(t, configFor(srv, "customers"))
	const n = 200
	at := func(i int, gen int64) *crmv1alpha1.Customer {
		spec := crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("c%d gen %d", i, gen)}
		if i%3 == 0 {
			spec.Email = fmt.Sprintf("c%d@example.com", i)
		}
		return customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i)), gen, spec)
	}
	all := func(f func(i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { f(i) })
		}
		wg.Wait()
	}
	all(func(i int) { mustDeliver(t, s, upsert(at(i, 2))) })
	// Older generations replayed, every other Customer deleted at 3, and a
	// Customer's redelivery in flight next to itself.
	all(func(i int) {
		if i%2 == 0 {
			mustDeliver(t, s, deleted(at(i, 3)))
		}
		mustDeliver(t, s, upsert(at(i, 1)))
		if i%5 == 0 {
			mustDeliver(t, s, upsert(at(i, 2)))
		}
	})
	// Late upserts of generation 2 do not bring back the deleted.
	all(func(i int) { mustDeliver(t, s, upsert(at(i, 2))) })
	for i := range n {
		r, ok := readRow(t, conn, "customers", fmt.Sprintf("uid-%d", i))
		switch {
		case i%2 == 0 && ok:
			t.Fatalf("c%d deleted at generation 3 came back: %s", i, r)
		case i%2 == 1 && !ok:
			t.Fatalf("c%d is missing", i)
		case i%2 == 1 && (r.Generation != 2 || str(r.Display) != fmt.Sprintf("c%d gen 2", i)):
			t.Fatalf("c%d: %s, want generation 2", i, r)
		case i%2 == 1 && i%3 == 0 && str(r.Email) != fmt.Sprintf("c%d@example.com", i):
			t.Fatalf("c%d: %s, want its email", i, r)
		case i%2 == 1 && i%3 != 0 && r.Email != nil:
			t.Fatalf("c%d: %s, want no email", i, r)
		}
	}
	if batches, rows := s.BatchStats(); batches >= rows {
		t.Fatalf("%d deliveries in %d batches: none was grouped", rows, batches)
	}
}

func TestSenderWritesTheNewestOfAConcurrentRunOfOneCustomersGenerations(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	cfg := configFor(srv, "customers")
	cfg.MaxConns = 1
	s := newSender(t, cfg)
	// Every generation of a few Customers at once: batches then hold several
	// rows of one Customer, which one upsert statement cannot write twice.
	const customers, generations = 3, 60
	var wg sync.WaitGroup
	for i := range customers {
		for gen := int64(1); gen <= generations; gen++ {
			wg.Go(func() {
				mustDeliver(t, s, upsert(customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i)), gen,
					crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("c%d gen %d", i, gen)})))
			})
		}
	}
	wg.Wait()
	for i := range customers {
		r, ok := readRow(t, conn, "customers", fmt.Sprintf("uid-%d", i))
		if !ok || r.Generation != generations || str(r.Display) != fmt.Sprintf("c%d gen %d", i, generations) {
			t.Fatalf("c%d: %s (found %t), want generation %d", i, r, ok, generations)
		}
	}
	if batches, rows := s.BatchStats(); batches >= rows {
		t.Fatalf("%d deliveries in %d batches: none was grouped", rows, batches)
	}
}

func TestSenderDeliversAGroupInOneTransactionAndAnswersEachEvent(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	s := newSender(t, configFor(srv, "customers"), postgres.WithMaxBatch(8))
	mustDeliver(t, s, upsert(customer("c0", "uid-0", 1, crmv1alpha1.CustomerSpec{DisplayName: "x"})))
	if _, err := conn.Exec(context.Background(), `ALTER TABLE public.customers ADD CONSTRAINT short_name CHECK (length(display_name) <= 10)`); err != nil {
		t.Fatal(err)
	}
	before, _ := s.BatchStats()
	// 20 events past a batch size of 8: three batches. One row breaks the
	// table's constraint, one Customer is deleted, one comes twice.
	var evs []delivery.Event
	for i := 1; i <= 17; i++ {
		name := "short"
		if i == 7 {
			name = "a name far too long for the check"
		}
		evs = append(evs, upsert(customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i)), 1, crmv1alpha1.CustomerSpec{DisplayName: name})))
	}
	evs = append(evs,
		deleted(customer("c0", "uid-0", 2, crmv1alpha1.CustomerSpec{})),
		upsert(customer("c3", "uid-3", 2, crmv1alpha1.CustomerSpec{DisplayName: "c3 gen 2"})),
		upsert(customer("gone", "", 1, crmv1alpha1.CustomerSpec{})))
	evs[19].Customer = nil
	results := s.DeliverGroup(context.Background(), evs)
	if len(results) != len(evs) {
		t.Fatalf("%d results for %d events", len(results), len(evs))
	}
	for i, res := range results {
		switch {
		case i == 6 || i == 19:
			if res.Err == nil || !res.Refused {
				t.Fatalf("event %d should be refused alone: %+v", i, res)
			}
		case res.Err != nil:
			t.Fatalf("event %d: %v", i, res.Err)
		}
	}
	if !strings.Contains(results[6].Err.Error(), "23514") {
		t.Fatalf("the refusal does not say why: %v", results[6].Err)
	}
	if after, _ := s.BatchStats(); after-before < 3 {
		t.Fatalf("19 rows in %d batches of at most 8", after-before)
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM public.customers`).Scan(&n); err != nil || n != 16 {
		t.Fatalf("rows = %d (%v), want 16: 17 upserted, one refused, c0 deleted", n, err)
	}
	if r, ok := readRow(t, conn, "customers", "uid-3"); !ok || r.Generation != 2 || str(r.Display) != "c3 gen 2" {
		t.Fatalf("c3: %s, want its generation 2", r)
	}
	if _, ok := readRow(t, conn, "customers", "uid-0"); ok {
		t.Fatal("c0 was deleted in the group and is still there")
	}
}

func TestSenderWritesOnlyTheFieldsTheSinkReceives(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	cfg := configFor(srv, "contacts")
	cfg.Fields = []crmv1alpha1.CustomerField{"displayName"}
	s := newSender(t, cfg)
	mustDeliver(t, s, upsert(customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{
		Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_1", DisplayName: "Acme", Email: "secret@acme.example",
		Phone: "+33 1 23 45 67 89", Lifecycle: crmv1alpha1.LifecycleActive})))
	r, _ := readRow(t, conn, "contacts", "uid-1")
	if str(r.Display) != "Acme" || r.Email != nil || str(r.ExternalID) != "cus_1" || str(r.Lifecycle) != "Active" {
		t.Fatalf("row = %s", r)
	}
	if strings.Contains(r.Spec, "secret@acme.example") || strings.Contains(r.Spec, "+33") || !strings.Contains(r.Spec, `"provider"`) {
		t.Fatalf("spec holds fields the sink does not receive, or lacks the identity: %s", r.Spec)
	}
}

func TestSenderRefusesARowThatTheTableRejectsAndWritesTheOthers(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	s := newSender(t, configFor(srv, "customers"))
	mustDeliver(t, s, upsert(customer("first", "uid-0", 1, crmv1alpha1.CustomerSpec{DisplayName: "x"})))
	// A team's own constraint on its table.
	if _, err := conn.Exec(context.Background(), `ALTER TABLE public.customers ADD CONSTRAINT short_name CHECK (length(display_name) <= 10)`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]delivery.Result, 20)
	for i := range results {
		wg.Go(func() {
			name := "short"
			if i == 7 {
				name = "a name far too long for the check"
			}
			results[i] = s.Deliver(context.Background(), upsert(customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i+1)), 1,
				crmv1alpha1.CustomerSpec{DisplayName: name})))
		})
	}
	wg.Wait()
	for i, res := range results {
		if i == 7 {
			if res.Err == nil || !res.Refused {
				t.Fatalf("the row that breaks the constraint: %+v", res)
			}
			if !strings.Contains(res.Err.Error(), "23514") {
				t.Fatalf("the refusal does not say why: %v", res.Err)
			}
			continue
		}
		if res.Err != nil {
			t.Fatalf("delivery %d: %v", i, res.Err)
		}
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM public.customers`).Scan(&n); err != nil || n != 20 {
		t.Fatalf("rows = %d (%v), want 20: the first and 19 of the 20", n, err)
	}
}

func TestSenderBacksOffWhileTheDatabaseIsDownAndCatchesUp(t *testing.T) {
	srv := postgrestest.Start(t)
	s := newSender(t, configFor(srv, "customers"))
	c := customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{DisplayName: "before"})
	mustDeliver(t, s, upsert(c))

	srv.Stop(t)
	c2 := c.DeepCopy()
	c2.Generation, c2.Spec.DisplayName = 2, "during"
	res := s.Deliver(context.Background(), upsert(c2))
	if res.Err == nil || res.Refused {
		t.Fatalf("with the database down: %+v, want an error that pauses the sink", res)
	}
	if strings.Contains(res.Err.Error(), postgrestest.Password) {
		t.Fatalf("the message holds the password: %v", res.Err)
	}
	t.Logf("with the database down: %v", res.Err)

	srv.Restart(t)
	// The pool's broken connections are replaced on the next deliveries.
	deadline := time.Now().Add(15 * time.Second)
	for {
		res = s.Deliver(context.Background(), upsert(c2))
		if res.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not caught up after the restart: %v", res.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r, _ := readRow(t, srv.Connect(t), "customers", "uid-1")
	if str(r.Display) != "during" || r.Generation != 2 {
		t.Fatalf("after the restart: %s", r)
	}
}

func TestSenderDialsThroughTheAddressPolicy(t *testing.T) {
	srv := postgrestest.Start(t)
	policy := delivery.AddressPolicy{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	s, err := postgres.New(configFor(srv, "customers"), policy)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res := s.Deliver(context.Background(), upsert(customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{})))
	var na *delivery.AddressNotAllowedError
	if res.Err == nil || !errors.As(res.Err, &na) || res.Refused {
		t.Fatalf("a denied database address: %+v, want an AddressNotAllowedError", res)
	}
	if !strings.Contains(res.Err.Error(), "127.0.0.1") {
		t.Fatalf("the message does not name the address: %v", res.Err)
	}
	n, _ := postgrestest.Connections(context.Background(), srv.Connect(t), "postgres-sink-test")
	if n != 0 {
		t.Fatalf("%d connections of the sink reached the server", n)
	}
}

func TestSenderGroupsConcurrentDeliveriesIntoBatches(t *testing.T) {
	srv := postgrestest.Start(t)
	conn := srv.Connect(t)
	cfg := configFor(srv, "customers")
	cfg.MaxConns = 1
	s := newSender(t, cfg)
	mustDeliver(t, s, upsert(customer("warm", "uid-warm", 1, crmv1alpha1.CustomerSpec{})))
	var before int64
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			mustDeliver(t, s, upsert(customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i)), 1, crmv1alpha1.CustomerSpec{})))
		})
	}
	wg.Wait()
	var after int64
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	// Every writing transaction takes a transaction id (the test's two reads too).
	if commits := after - before - 1; commits > 100 {
		t.Fatalf("400 concurrent deliveries took %d transactions; want them grouped", commits)
	} else {
		t.Logf("400 concurrent deliveries in %d transactions", commits)
	}
}

// flushers counts the goroutines sending batches.
func flushers() int {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	n := 0
	for _, block := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(block, "postgres.(*Sender).flush+") {
			var count int
			_, _ = fmt.Sscanf(block, "%d @", &count)
			n += count
		}
	}
	return n
}

func TestSenderHoldsAtMostOneFlusherPerConnectionAndNoneWhenIdle(t *testing.T) {
	srv := postgrestest.Start(t)
	cfg := configFor(srv, "customers")
	cfg.MaxConns = 3
	s := newSender(t, cfg, postgres.WithFlusherIdle(300*time.Millisecond))
	if n := flushers(); n != 0 {
		t.Fatalf("%d flushers before any delivery", n)
	}
	var wg sync.WaitGroup
	peak := 0
	var mu sync.Mutex
	for i := range 200 {
		wg.Go(func() {
			mustDeliver(t, s, upsert(customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i)), 1, crmv1alpha1.CustomerSpec{})))
			mu.Lock()
			peak = max(peak, flushers())
			mu.Unlock()
		})
	}
	wg.Wait()
	if peak == 0 || peak > 3 {
		t.Fatalf("%d flushers at the peak of 200 concurrent deliveries, want 1 to maxConns (3)", peak)
	}
	deadline := time.Now().Add(5 * time.Second)
	for flushers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d flushers left on an idle sink", flushers())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And a delivery after that starts one again.
	mustDeliver(t, s, upsert(customer("late", "uid-late", 1, crmv1alpha1.CustomerSpec{})))
}

func TestSenderSpeaksTLSAsItsSSLModeSays(t *testing.T) {
	srv := postgrestest.Start(t, postgrestest.WithTLS())
	conn := srv.Connect(t)
	encrypted := func(app string) bool {
		t.Helper()
		var ssl bool
		if err := conn.QueryRow(context.Background(), `SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
			WHERE a.application_name = $1`, app).Scan(&ssl); err != nil {
			t.Fatal(err)
		}
		return ssl
	}
	otherCA := postgrestest.Start(t, postgrestest.WithTLS()).CA()

	for _, tc := range []struct {
		mode string
		ca   []byte
		ok   bool
	}{
		{postgres.SSLVerifyFull, srv.CA(), true},
		{postgres.SSLVerifyCA, srv.CA(), true},
		{postgres.SSLRequire, nil, true},
		{postgres.SSLVerifyFull, otherCA, false},
		{postgres.SSLVerifyCA, otherCA, false},
		{postgres.SSLVerifyFull, nil, false}, // the system roots do not know the test's CA
	} {
		name := fmt.Sprintf("%s ca=%v", tc.mode, tc.ca != nil)
		cfg := configFor(srv, "customers")
		cfg.SSLMode, cfg.CA = tc.mode, tc.ca
		cfg.ApplicationName = strings.ReplaceAll("tls-"+tc.mode+fmt.Sprint(len(tc.ca)), "-", "_")
		s := newSender(t, cfg)
		res := s.Deliver(context.Background(), upsert(customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{})))
		switch {
		case tc.ok && res.Err != nil:
			t.Fatalf("%s: %v", name, res.Err)
		case tc.ok && !encrypted(cfg.ApplicationName):
			t.Fatalf("%s: the connection is not encrypted", name)
		case !tc.ok && (res.Err == nil || res.Refused):
			t.Fatalf("%s: %+v, want a failure that pauses the sink", name, res)
		case !tc.ok && !strings.Contains(res.Err.Error(), "TLS with PostgreSQL at 127.0.0.1"):
			t.Fatalf("%s: the message does not say TLS failed: %v", name, res.Err)
		}
	}
}

func TestSenderRunsOnTheConnectionsItsNamespaceMayHoldAndGivesThemBackWhenIdle(t *testing.T) {
	srv := postgrestest.Start(t)
	limits := delivery.NewConnectionLimits(10, 2)
	cfg := configFor(srv, "customers")
	cfg.MaxConns = 4
	s := newSender(t, cfg, postgres.WithConnectionLimits(limits, "tenant"), postgres.WithConnIdle(300*time.Millisecond))
	var wg sync.WaitGroup
	var mu sync.Mutex
	most := 0
	for i := range 200 {
		wg.Go(func() {
			mustDeliver(t, s, upsert(customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i)), 1, crmv1alpha1.CustomerSpec{})))
			_, n := limits.Open("tenant")
			mu.Lock()
			most = max(most, n)
			mu.Unlock()
		})
	}
	wg.Wait()
	if most < 1 || most > 2 {
		t.Fatalf("%d connections open at the peak of 200 concurrent deliveries, want 1 or 2 (the namespace's limit)", most)
	}
	conn := srv.Connect(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		open, err := postgrestest.Connections(context.Background(), conn, "postgres-sink-test")
		if err != nil {
			t.Fatal(err)
		}
		total, inNamespace := limits.Open("tenant")
		if open == 0 && total == 0 && inNamespace == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle sink still holds %d connections (%d counted against its namespace)", open, inNamespace)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// And it connects again for the next delivery.
	mustDeliver(t, s, upsert(customer("late", "uid-late", 1, crmv1alpha1.CustomerSpec{})))
}

func TestSenderSaysWhenTheConnectionLimitLeavesItNone(t *testing.T) {
	srv := postgrestest.Start(t)
	limits := delivery.NewConnectionLimits(1, 1)
	// Another namespace's sink holds the only connection.
	held := deliverytest.HoldConnections(t, limits, "other", 1)[0]
	s := newSender(t, configFor(srv, "customers"), postgres.WithConnectionLimits(limits, "tenant"))
	res := s.Deliver(context.Background(), upsert(customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{})))
	var limit *delivery.ConnectionLimitError
	if res.Err == nil || !errors.As(res.Err, &limit) || res.Refused {
		t.Fatalf("a delivery with no connection left: %+v, want a ConnectionLimitError", res)
	}
	if !strings.Contains(res.Err.Error(), "--sink-max-connections") || limit.Limit != 1 || limit.PerNamespace {
		t.Fatalf("the message does not name the limit: %v", res.Err)
	}
	// Once the other connection closes, the sink gets it.
	_ = held.Close()
	mustDeliver(t, s, upsert(customer("acme", "uid-1", 1, crmv1alpha1.CustomerSpec{})))
}
