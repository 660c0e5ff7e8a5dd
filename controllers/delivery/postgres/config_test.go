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
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/delivery/postgres"
)

func pgSink(p crmv1alpha1.PostgresSink) *crmv1alpha1.CustomerSink {
	return &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: "warehouse"},
		Spec: crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, Postgres: &p,
			SecretRef: &crmv1alpha1.SecretReference{Name: "warehouse"}}}
}

func TestConfigFromSinkReadsTheConnectionFromTheSecret(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret map[string]string
		want   postgres.Config
	}{
		{"a URL", map[string]string{"dsn": "postgres://app:s3cr%40t@db.example.com:6432/crm?sslmode=verify-full&application_name=etl"},
			postgres.Config{Host: "db.example.com", Port: 6432, Database: "crm", User: "app", Password: "s3cr@t", SSLMode: "verify-full", ApplicationName: "etl"}},
		{"key=value settings, quoted", map[string]string{"dsn": `host=db.example.com user=app password='it\'s \'quoted\' ' dbname=crm`},
			postgres.Config{Host: "db.example.com", Port: 5432, Database: "crm", User: "app", Password: "it's 'quoted' ", SSLMode: "require", ApplicationName: "customer-operator"}},
		{"separate keys, the database defaulting to the user", map[string]string{"host": "10.0.0.7", "user": "app", "password": "pw", "sslmode": "disable"},
			postgres.Config{Host: "10.0.0.7", Port: 5432, Database: "app", User: "app", Password: "pw", SSLMode: "disable", ApplicationName: "customer-operator"}},
		{"sslmode from its key over the DSN's", map[string]string{"dsn": "postgres://app:pw@db/crm?sslmode=disable", "sslmode": "require"},
			postgres.Config{Host: "db", Port: 5432, Database: "crm", User: "app", Password: "pw", SSLMode: "require", ApplicationName: "customer-operator"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string][]byte{}
			for k, v := range tc.secret {
				data[k] = []byte(v)
			}
			got, err := postgres.ConfigFromSink(pgSink(crmv1alpha1.PostgresSink{}), data)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			w.Schema, w.Table, w.MaxConns, w.Timeout = "public", "customers", 4, delivery.DefaultTimeout
			// The password is compared, never printed.
			if got.Password != w.Password {
				t.Fatalf("the password was not read as written")
			}
			got.Password, w.Password = "", ""
			if got.Host != w.Host || got.Port != w.Port || got.Database != w.Database || got.User != w.User ||
				got.SSLMode != w.SSLMode || got.ApplicationName != w.ApplicationName || got.Schema != w.Schema ||
				got.Table != w.Table || got.MaxConns != w.MaxConns || got.Timeout != w.Timeout {
				t.Fatalf("got %+v\nwant %+v", got, w)
			}
		})
	}
}

func TestConfigFromSinkRefusesWhatItCannotUseNamingTheKey(t *testing.T) {
	const password = "hunter2-do-not-print"
	for _, tc := range []struct {
		name   string
		secret map[string]string
		spec   crmv1alpha1.PostgresSink
		kind   error
		msg    string
	}{
		{"no connection", map[string]string{"user": "app"}, crmv1alpha1.PostgresSink{}, delivery.ErrInvalidSecret, `Secret key "host": is missing`},
		{"a file-reading setting", map[string]string{"dsn": "host=db user=app password=" + password + " sslrootcert=/etc/ssl/ca.pem"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "dsn": setting "sslrootcert" is not supported`},
		{"a Unix socket", map[string]string{"host": "/var/run/postgresql", "user": "app"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "host": must be one host name or address`},
		{"a host list", map[string]string{"dsn": "postgres://app:" + password + "@db1,db2/crm"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "dsn"`},
		{"prefer", map[string]string{"host": "db", "user": "app", "sslmode": "prefer"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "sslmode": "prefer" is not one of`},
		{"verify-ca without a CA", map[string]string{"host": "db", "user": "app", "sslmode": "verify-ca"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "ca.crt": is required with sslmode verify-ca`},
		{"a key in ca.crt", map[string]string{"host": "db", "user": "app", "ca.crt": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "ca.crt": holds a "PRIVATE KEY" PEM block`},
		{"a mis-quoted value", map[string]string{"dsn": "host=db user=app password='" + password + "''x y=z"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "dsn": is not valid key=value settings`},
		{"both dsn and host", map[string]string{"dsn": "postgres://app@db/crm", "host": "db"}, crmv1alpha1.PostgresSink{},
			delivery.ErrInvalidSecret, `Secret key "host": is not allowed together with "dsn"`},
		{"a table name with a quote", map[string]string{"host": "db", "user": "app"}, crmv1alpha1.PostgresSink{Table: `x"y`},
			delivery.ErrInvalidSpec, `spec.postgres.table`},
		{"a pool too large", map[string]string{"host": "db", "user": "app"}, crmv1alpha1.PostgresSink{MaxConns: 64},
			delivery.ErrInvalidSpec, `spec.postgres.maxConns: must be from 1 to 16`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := map[string][]byte{}
			for k, v := range tc.secret {
				data[k] = []byte(v)
			}
			_, err := postgres.ConfigFromSink(pgSink(tc.spec), data)
			if err == nil || !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v with %q", err, tc.kind, tc.msg)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("the message holds the password: %v", err)
			}
		})
	}
}
