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

package postgres

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// tombstoneSuffix names the table of deleted Customers next to the sink's table.
const tombstoneSuffix = "_deleted"

// tombstoneRetention is how long the uid of a deleted Customer is kept: long
// past any delivery of it that could still be in flight.
const tombstoneRetention = "7 days"

// tables names a sink's two tables, quoted.
type tables struct {
	schema, table, tombstones string // quoted identifiers
	rows, deleted             string // schema-qualified
}

func newTables(schema, table string) tables {
	tomb := table + tombstoneSuffix
	if len(tomb) > 63 { // PostgreSQL would truncate it; do so visibly
		tomb = table[:63-len(tombstoneSuffix)] + tombstoneSuffix
	}
	t := tables{schema: pgx.Identifier{schema}.Sanitize(), table: pgx.Identifier{table}.Sanitize(), tombstones: pgx.Identifier{tomb}.Sanitize()}
	t.rows = t.schema + "." + t.table
	t.deleted = t.schema + "." + t.tombstones
	return t
}

// DDL is the statements that create a sink's tables when missing: the rows, one
// per Customer, and the uids of deleted Customers with the generation they were
// deleted at, so that a late upsert of an older generation cannot bring a row
// back.
func DDL(schema, table string) string {
	t := newTables(schema, table)
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %[1]s (
    uid          text        PRIMARY KEY,
    namespace    text        NOT NULL,
    name         text        NOT NULL,
    generation   bigint      NOT NULL,
    provider     text,
    external_id  text,
    display_name text,
    company_name text,
    email        text,
    phone        text,
    tax_id       text,
    language     text,
    lifecycle    text,
    spec         jsonb       NOT NULL,
    labels       jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS %[2]s (
    uid        text        PRIMARY KEY,
    generation bigint      NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
`, t.rows, t.deleted)
}

// statements are a sink's SQL, built once from its table names.
type statements struct {
	ddl, lock, upsert, del, prune string
}

func newStatements(schema, table string) statements {
	t := newTables(schema, table)
	return statements{
		ddl: DDL(schema, table),
		// Every op of a batch takes its Customer's lock first, in one statement,
		// keys sorted so that batches cannot deadlock. The lock serialises an
		// upsert and a delete of one Customer that overlap (a delivery given up
		// on while its statement still ran, two operator replicas during a
		// leader hand-over): each op's statement then sees the other's commit.
		// count() answers one row, not one per key; the locks are still
		// taken in the array's order.
		lock: `SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k`,
		// One statement upserts every row of a batch, passed as one array per
		// column: PostgreSQL plans and runs it once, not once per row. A batch
		// holds each uid once (ON CONFLICT cannot update a row twice). An empty
		// text is NULL, as newRow makes it.
		upsert: fmt.Sprintf(`INSERT INTO %[1]s AS t (uid, namespace, name, generation, provider, external_id,
    display_name, company_name, email, phone, tax_id, language, lifecycle, spec, labels, updated_at)
SELECT r.uid, r.namespace, r.name, r.generation, NULLIF(r.provider, ''), NULLIF(r.external_id, ''),
    NULLIF(r.display_name, ''), NULLIF(r.company_name, ''), NULLIF(r.email, ''), NULLIF(r.phone, ''),
    NULLIF(r.tax_id, ''), NULLIF(r.language, ''), NULLIF(r.lifecycle, ''), r.spec::jsonb, r.labels::jsonb, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])
    AS r(uid, namespace, name, generation, provider, external_id, display_name, company_name, email, phone,
    tax_id, language, lifecycle, spec, labels)
WHERE NOT EXISTS (SELECT 1 FROM %[2]s d WHERE d.uid = r.uid AND d.generation >= r.generation)
ON CONFLICT (uid) DO UPDATE SET namespace = EXCLUDED.namespace, name = EXCLUDED.name,
    generation = EXCLUDED.generation, provider = EXCLUDED.provider, external_id = EXCLUDED.external_id,
    display_name = EXCLUDED.display_name, company_name = EXCLUDED.company_name, email = EXCLUDED.email,
    phone = EXCLUDED.phone, tax_id = EXCLUDED.tax_id, language = EXCLUDED.language,
    lifecycle = EXCLUDED.lifecycle, spec = EXCLUDED.spec, labels = EXCLUDED.labels, updated_at = EXCLUDED.updated_at
WHERE t.generation < EXCLUDED.generation`, t.rows, t.deleted),
		del: fmt.Sprintf(`WITH gone AS (DELETE FROM %[1]s WHERE uid = $1::text AND generation <= $2::bigint)
INSERT INTO %[2]s AS d (uid, generation, deleted_at) VALUES ($1::text, $2::bigint, now())
ON CONFLICT (uid) DO UPDATE SET generation = GREATEST(d.generation, EXCLUDED.generation), deleted_at = EXCLUDED.deleted_at`,
			t.rows, t.deleted),
		prune: fmt.Sprintf(`DELETE FROM %s WHERE deleted_at < now() - interval '%s'`, t.deleted, tombstoneRetention),
	}
}

// lockKey is a Customer's advisory lock key, distinct per table.
func lockKey(rows, uid string) int64 {
	h := fnv.New64a()
	h.Write([]byte(rows))
	h.Write([]byte{0})
	h.Write([]byte(uid))
	return int64(h.Sum64()) //nolint:gosec // a hash: wrapping is intended
}

// row is one Customer projected onto the table's columns.
type row struct {
	uid, namespace, name string
	generation           int64
	// text holds the main fields' columns, provider to lifecycle in the
	// table's order; an empty one is NULL in the table.
	text         [9]string
	spec, labels string
}

// columns are the rows of a batch as the upsert's arguments: one array per
// column.
func columns(rows []*row) []any {
	n := len(rows)
	uid, namespace, name := make([]string, n), make([]string, n), make([]string, n)
	generation := make([]int64, n)
	var text [9][]string
	for i := range text {
		text[i] = make([]string, n)
	}
	spec, labels := make([]string, n), make([]string, n)
	for i, r := range rows {
		uid[i], namespace[i], name[i], generation[i], spec[i], labels[i] = r.uid, r.namespace, r.name, r.generation, r.spec, r.labels
		for j := range text {
			text[j][i] = r.text[j]
		}
	}
	args := []any{uid, namespace, name, generation}
	for _, t := range text {
		args = append(args, t)
	}
	return append(args, spec, labels)
}

// newRow projects a Customer onto the table's columns: a column of a spec field
// the sink does not receive (spec.fields) is NULL, and spec holds only those
// fields, as the HTTP sink's data.spec does.
func newRow(c *crmv1alpha1.Customer, fields []crmv1alpha1.CustomerField) (*row, error) {
	keep := func(f crmv1alpha1.CustomerField) bool {
		if fields == nil {
			return true
		}
		for _, x := range fields {
			if x == f {
				return true
			}
		}
		for _, x := range delivery.IdentityFields {
			if x == f {
				return true
			}
		}
		return false
	}
	col := func(f crmv1alpha1.CustomerField, v string) string {
		if !keep(f) {
			return ""
		}
		return v
	}
	specJSON, err := json.Marshal(&c.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the spec: %w", err)
	}
	if fields != nil {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(specJSON, &all); err != nil {
			return nil, fmt.Errorf("encoding the spec: %w", err)
		}
		for k := range all {
			if !keep(crmv1alpha1.CustomerField(k)) {
				delete(all, k)
			}
		}
		if specJSON, err = json.Marshal(all); err != nil {
			return nil, fmt.Errorf("encoding the spec: %w", err)
		}
	}
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	labelsJSON, err := json.Marshal(labels)
	if err != nil {
		return nil, fmt.Errorf("encoding the labels: %w", err)
	}
	s := &c.Spec
	return &row{
		uid: string(c.UID), namespace: c.Namespace, name: c.Name, generation: c.Generation,
		text: [9]string{
			col("provider", string(s.Provider)), col("externalID", s.ExternalID),
			col("displayName", s.DisplayName), col("companyName", s.CompanyName), col("email", s.Email),
			col("phone", s.Phone), col("taxID", s.TaxID), col("language", s.Language),
			col("lifecycle", string(s.Lifecycle)),
		},
		spec: string(specJSON), labels: string(labelsJSON),
	}, nil
}

// RowArgs are the arguments of a Customer's upsert, in the order of the table's
// columns from uid to labels: for tools that write the same rows themselves (the
// benchmarks' baseline).
func RowArgs(c *crmv1alpha1.Customer, fields []crmv1alpha1.CustomerField) ([]any, error) {
	r, err := newRow(c, fields)
	if err != nil {
		return nil, err
	}
	args := []any{r.uid, r.namespace, r.name, r.generation}
	for _, t := range r.text {
		if t == "" {
			args = append(args, nil)
			continue
		}
		args = append(args, t)
	}
	return append(args, []byte(r.spec), []byte(r.labels)), nil
}
