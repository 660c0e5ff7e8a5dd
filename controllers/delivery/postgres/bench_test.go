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
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/delivery/postgres"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/test/benchutil"
	"github.com/customer-operator/customer-operator/test/postgrestest"
)

const (
	benchCustomers = 10000
	// rawBatch is the rows per batch of the big-batch baseline.
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

// backfillSender delivers every Customer through a new sink's Sender, with
// inFlight deliveries in flight as the engine's workers send a backfill: in
// groups of engine.GroupSize, the Sender taking groups.
func backfillSender(b *testing.B, srv *postgrestest.Server, table string, cs []*crmv1alpha1.Customer, inFlight int) time.Duration {
	s, err := postgres.New(configFor(srv, table), loopback)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	group := engine.GroupSize(inFlight)
	// The work is queued beforehand, as in a sink's queue, so that no feeding
	// goroutine stands between the workers and their next Customers.
	work := make(chan []*crmv1alpha1.Customer, (len(cs)+group-1)/group)
	for i := 0; i < len(cs); i += group {
		work <- cs[i:min(i+group, len(cs))]
	}
	close(work)
	var wg sync.WaitGroup
	start := time.Now()
	for range inFlight / group {
		wg.Go(func() {
			for chunk := range work {
				evs := make([]delivery.Event, len(chunk))
				for i, c := range chunk {
					evs[i] = delivery.NewEvent(c, false, start)
				}
				for _, res := range s.DeliverGroup(context.Background(), evs) {
					if res.Err != nil {
						b.Error(res.Err)
					}
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	batches, rows := s.BatchStats()
	b.Logf("sender, %d in flight: %d batches of %.1f deliveries on average", inFlight, batches, float64(rows)/float64(batches))
	return d
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

// backfillRaw writes the same rows with plain pgx: batches of batchRows upserts
// from workers goroutines over a pool as large as the sink's.
func backfillRaw(b *testing.B, srv *postgrestest.Server, table string, cs []*crmv1alpha1.Customer, workers, batchRows int) time.Duration {
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
	work := make(chan []*crmv1alpha1.Customer, (len(cs)+batchRows-1)/batchRows)
	for i := 0; i < len(cs); i += batchRows {
		work <- cs[i:min(i+batchRows, len(cs))]
	}
	close(work)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
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

// BenchmarkBackfill10kCustomers writes 10,000 Customers into a new table through
// a new sink's Sender from W concurrent deliveries (as the engine's workers send
// a backfill: W is --sink-concurrency, 16 by default), and, alternating in the
// same run, with raw pgx batched upserts of the same rows over a pool of the
// same size (4 connections):
//
//   - raw_same_inflight: the same W rows in flight, as W/4-row batches on each
//     connection: what a client can batch when it holds W rows at a time, as
//     the Sender does;
//   - raw_256: 16 workers with 256-row batches: the ceiling of batching, which
//     needs hundreds of rows in flight.
func BenchmarkBackfill10kCustomers(b *testing.B) {
	for _, w := range []int{16, 64} {
		b.Run(fmt.Sprintf("inflight=%d", w), func(b *testing.B) { benchBackfill(b, w) })
	}
}

func benchBackfill(b *testing.B, workers int) {
	srv := postgrestest.Start(b)
	cs := benchCustomerList()
	conns := postgres.DefaultMaxConns
	rates := map[string][]float64{}
	round := 0
	for b.Loop() {
		round++
		order := []string{"sender", "raw_same_inflight", "raw_256"}
		for k := range round - 1 { // rotate, so that no one always goes first
			_ = k
			order = append(order[1:], order[0])
		}
		for _, which := range order {
			table := fmt.Sprintf("bench_%s_%d", which, round)
			var d time.Duration
			switch which {
			case "sender":
				d = backfillSender(b, srv, table, cs, workers)
			case "raw_same_inflight":
				d = backfillRaw(b, srv, table, cs, conns, max(1, workers/conns))
			case "raw_256":
				d = backfillRaw(b, srv, table, cs, 16, rawBatch)
			}
			rates[which] = append(rates[which], float64(len(cs))/d.Seconds())
			if n := countRows(b, srv, table); n != len(cs) {
				b.Fatalf("%s wrote %d rows, want %d", which, n, len(cs))
			}
		}
	}
	// The ratios are each round's, whose three runs were next to each other in
	// time, then their median: the machine's load moves less within a round.
	var same, big []float64
	for i := range rates["sender"] {
		same = append(same, rates["sender"][i]/rates["raw_same_inflight"][i])
		big = append(big, rates["sender"][i]/rates["raw_256"][i])
	}
	b.ReportMetric(benchutil.Median(rates["sender"]), "sender_rows/s")
	b.ReportMetric(benchutil.Median(rates["raw_same_inflight"]), "raw_same_inflight_rows/s")
	b.ReportMetric(benchutil.Median(rates["raw_256"]), "raw_256_rows/s")
	b.ReportMetric(benchutil.Median(same), "ratio_same_inflight")
	b.ReportMetric(benchutil.Median(big), "ratio_256")
	b.Logf("%d rounds, rows/s: %v", round, rates)
}
