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
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/delivery/postgres"
	"github.com/customer-operator/customer-operator/test/postgrestest"
)

const (
	benchCustomers = 10000
	// benchWorkers is the engine's default deliveries in flight to one sink
	// (--sink-concurrency).
	benchWorkers = 16
	// rawBatch is the baseline's rows per batch.
	rawBatch = 256
)

func benchCustomerList() []*crmv1alpha1.Customer {
	out := make([]*crmv1alpha1.Customer, benchCustomers)
	for i := range out {
		out[i] = customer(fmt.Sprintf("c%05d", i), types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)), 1,
			crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGETTRX, ExternalID: fmt.Sprintf("cus_%d", i),
				DisplayName: fmt.Sprintf("Customer %d", i), Email: fmt.Sprintf("c%d@example.com", i),
				CompanyName: "Acme", Language: "en", Lifecycle: crmv1alpha1.LifecycleActive,
				Attributes: map[string]string{"segment": "smb"}})
	}
	return out
}

// backfillSender delivers every Customer through a new sink's Sender, from
// benchWorkers goroutines as the engine's workers do.
func backfillSender(b *testing.B, srv *postgrestest.Server, table string, cs []*crmv1alpha1.Customer) time.Duration {
	s, err := postgres.New(configFor(srv, table), loopback)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	work := make(chan *crmv1alpha1.Customer)
	var wg sync.WaitGroup
	start := time.Now()
	for range benchWorkers {
		wg.Go(func() {
			for c := range work {
				if res := s.Deliver(context.Background(), delivery.NewEvent(c, false, start)); res.Err != nil {
					b.Error(res.Err)
				}
			}
		})
	}
	for _, c := range cs {
		work <- c
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}

// rawUpsert is the generation-guarded upsert, without the sink's locks
// and tombstone check.
const rawUpsert = `INSERT INTO public.%s AS t (uid, namespace, name, generation, provider, external_id,
    display_name, company_name, email, phone, tax_id, language, lifecycle, spec, labels, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, now())
ON CONFLICT (uid) DO UPDATE SET namespace = EXCLUDED.namespace, name = EXCLUDED.name,
    generation = EXCLUDED.generation, provider = EXCLUDED.provider, external_id = EXCLUDED.external_id,
    display_name = EXCLUDED.display_name, company_name = EXCLUDED.company_name, email = EXCLUDED.email,
    phone = EXCLUDED.phone, tax_id = EXCLUDED.tax_id, language = EXCLUDED.language,
    lifecycle = EXCLUDED.lifecycle, spec = EXCLUDED.spec, labels = EXCLUDED.labels, updated_at = EXCLUDED.updated_at
WHERE t.generation < EXCLUDED.generation`

// backfillRaw writes the same rows with plain pgx: batches of rawBatch upserts
// from benchWorkers goroutines over a pool as large as the sink's.
func backfillRaw(b *testing.B, srv *postgrestest.Server, table string, cs []*crmv1alpha1.Customer) time.Duration {
	ctx := context.Background()
	pc, err := pgxpool.ParseConfig(srv.DSN())
	if err != nil {
		b.Fatal(err)
	}
	pc.MaxConns = postgres.DefaultMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, postgres.DDL("public", table), pgx.QueryExecModeSimpleProtocol); err != nil {
		b.Fatal(err)
	}
	sql := fmt.Sprintf(rawUpsert, table)
	work := make(chan []*crmv1alpha1.Customer)
	var wg sync.WaitGroup
	start := time.Now()
	for range benchWorkers {
		wg.Go(func() {
			for chunk := range work {
				batch := &pgx.Batch{}
				for _, c := range chunk {
					batch.Queue(sql, rowArgs(b, c)...)
				}
				if err := pool.SendBatch(ctx, batch).Close(); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := 0; i < len(cs); i += rawBatch {
		work <- cs[i:min(i+rawBatch, len(cs))]
	}
	close(work)
	wg.Wait()
	return time.Since(start)
}

func rowArgs(b *testing.B, c *crmv1alpha1.Customer) []any {
	args, err := postgres.RowArgs(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	return args
}

func countRows(b *testing.B, srv *postgrestest.Server, table string) int {
	var n int
	conn, err := pgx.Connect(context.Background(), srv.DSN())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM public."+table).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkBackfill10kCustomers writes 10,000 Customers into a new table, through
// a new sink's Sender from 16 concurrent deliveries (as the engine sends a
// backfill), and with raw pgx batched upserts of the same rows from 16 workers
// over a pool of the same size, alternating, in the same run. It reports both
// rates, their medians' ratio, and how the Sender grouped the rows.
func BenchmarkBackfill10kCustomers(b *testing.B) {
	srv := postgrestest.Start(b)
	cs := benchCustomerList()
	var sender, raw []float64
	round := 0
	for b.Loop() {
		round++
		order := []string{"sender", "raw"}
		if round%2 == 0 {
			order = []string{"raw", "sender"}
		}
		for _, which := range order {
			table := fmt.Sprintf("bench_%s_%d", which, round)
			var d time.Duration
			if which == "sender" {
				d = backfillSender(b, srv, table, cs)
				sender = append(sender, float64(len(cs))/d.Seconds())
			} else {
				d = backfillRaw(b, srv, table, cs)
				raw = append(raw, float64(len(cs))/d.Seconds())
			}
			if n := countRows(b, srv, table); n != len(cs) {
				b.Fatalf("%s wrote %d rows, want %d", which, n, len(cs))
			}
		}
	}
	ms, mr := median(sender), median(raw)
	b.ReportMetric(ms, "sender_rows/s")
	b.ReportMetric(mr, "raw_rows/s")
	b.ReportMetric(ms/mr, "ratio")
	b.Logf("rounds %d: sender %v rows/s, raw pgx %v rows/s", round, sender, raw)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
