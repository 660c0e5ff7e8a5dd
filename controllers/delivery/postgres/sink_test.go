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
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/test/postgrestest"
)

// cluster is a real API server with the operator's controllers, shared by the
// package's tests on one.
type cluster struct {
	k8s client.Client
}

var (
	clusterOnce sync.Once
	theCluster  *cluster
	clusterErr  error
)

// sinkPolicy lets deliveries reach the test's PostgreSQL on 127.0.0.1 and keeps
// the rest of the default deny list: 127.0.0.2 is refused.
var sinkPolicy = delivery.AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	clusterOnce.Do(func() { theCluster, clusterErr = newCluster() })
	if clusterErr != nil {
		t.Fatalf("starting the API server and the controllers: %v", clusterErr)
	}
	return theCluster
}

func newCluster() (*cluster, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(crmv1alpha1.AddToScheme(scheme))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		env.BinaryAssetsDirectory = filepath.Join("..", "..", "..", "bin", "k8s")
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	stopEnv = func() { _ = env.Stop() }
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	secrets := secretcache.New(mgr.GetClient(), mgr.GetAPIReader())
	if err := controllers.SetupSecretCache(ctx, mgr, secrets, time.Minute); err != nil {
		cancel()
		return nil, err
	}
	if err := controllers.Setup(mgr, secrets, controllers.Options{
		Client:             &delivery.Client{Policy: sinkPolicy},
		PerSinkConcurrency: 16, MaxConcurrentReconciles: 8,
		BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second,
		DeleteGracePeriod: 10 * time.Minute, CountInterval: 200 * time.Millisecond,
		// Every test's sinks run within two connections of their namespace.
		SinkMaxConnections: 256, SinkMaxConnectionsPerNamespace: connectionsPerNamespace,
	}); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	stopManager = func() { cancel(); <-done }
	return &cluster{k8s: k8s}, nil
}

var stopEnv, stopManager func()

// connectionsPerNamespace is the controllers' --sink-max-connections-per-namespace.
const connectionsPerNamespace = 2

func TestMain(m *testing.M) {
	code := m.Run()
	if stopManager != nil {
		stopManager()
	}
	if stopEnv != nil {
		stopEnv()
	}
	os.Exit(code)
}

var namespaces int

func (c *cluster) namespace(t *testing.T) string {
	t.Helper()
	namespaces++
	ns := fmt.Sprintf("pg-%d-%d", os.Getpid(), namespaces)
	if err := c.k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// postgresSink creates a Secret with the server's address and a sink writing to table.
func (c *cluster) postgresSink(t *testing.T, ns, name string, srv *postgrestest.Server, host, table string) {
	t.Helper()
	ctx := context.Background()
	if err := c.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{
		"host": host, "port": fmt.Sprint(srv.Port), "database": postgrestest.Database,
		"user": postgrestest.User, "password": postgrestest.Password, "sslmode": "disable",
	}}); err != nil {
		t.Fatal(err)
	}
	if err := c.k8s.Create(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: crmv1alpha1.CustomerSinkSpec{
			Type:      crmv1alpha1.SinkTypePostgres,
			Postgres:  &crmv1alpha1.PostgresSink{Table: table},
			SecretRef: &crmv1alpha1.SecretReference{Name: name},
			Timeout:   &metav1.Duration{Duration: 3 * time.Second},
		}}); err != nil {
		t.Fatal(err)
	}
}

// dsnSink creates a PostgreSQL sink of spec whose Secret holds dsn (for
// tests that tell its connections by their application_name), and returns
// the Secret.
func (c *cluster) dsnSink(g Gomega, ns, name, dsn string, spec crmv1alpha1.PostgresSink) *corev1.Secret {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: map[string]string{"dsn": dsn}}
	g.Expect(c.k8s.Create(context.Background(), secret)).To(Succeed())
	g.Expect(c.k8s.Create(context.Background(), &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, Postgres: &spec,
			SecretRef: &crmv1alpha1.SecretReference{Name: name}}})).To(Succeed())
	return secret
}

// update changes an object as a person would: read, change, write, again on a
// conflict with the controllers' own writes.
func (c *cluster) update(g Gomega, obj client.Object, change func()) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change()
		return c.k8s.Update(context.Background(), obj)
	})).To(Succeed())
}

func (c *cluster) readyCondition(g Gomega, ns, name string) metav1.Condition {
	sink := &crmv1alpha1.CustomerSink{}
	g.Expect(c.k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, sink)).To(Succeed())
	cond := meta.FindStatusCondition(sink.Status.Conditions, "Ready")
	g.Expect(cond).NotTo(BeNil(), "no Ready condition yet")
	g.Expect(cond.ObservedGeneration).To(Equal(sink.Generation))
	return *cond
}

// tableRow is a row as the test compares it with a Customer.
type tableRow struct {
	UID, Namespace, Name                                  string
	Generation                                            int64
	Provider, ExternalID, DisplayName, CompanyName, Email *string
	Phone, TaxID, Language, Lifecycle                     *string
	Spec                                                  crmv1alpha1.CustomerSpec
	Labels                                                map[string]string
}

func readTable(g Gomega, conn *pgx.Conn, table string) map[string]tableRow {
	rows, err := conn.Query(context.Background(), fmt.Sprintf(`SELECT uid, namespace, name, generation, provider, external_id,
		display_name, company_name, email, phone, tax_id, language, lifecycle, spec, labels FROM public.%s`, pgx.Identifier{table}.Sanitize()))
	g.Expect(err).NotTo(HaveOccurred())
	defer rows.Close()
	out := map[string]tableRow{}
	for rows.Next() {
		var r tableRow
		var spec, labels []byte
		g.Expect(rows.Scan(&r.UID, &r.Namespace, &r.Name, &r.Generation, &r.Provider, &r.ExternalID, &r.DisplayName,
			&r.CompanyName, &r.Email, &r.Phone, &r.TaxID, &r.Language, &r.Lifecycle, &spec, &labels)).To(Succeed())
		g.Expect(json.Unmarshal(spec, &r.Spec)).To(Succeed())
		g.Expect(json.Unmarshal(labels, &r.Labels)).To(Succeed())
		out[r.UID] = r
	}
	g.Expect(rows.Err()).NotTo(HaveOccurred())
	return out
}

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// expectedRow is what the table must hold for a live Customer, every field.
func expectedRow(c *crmv1alpha1.Customer) tableRow {
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	s := c.Spec
	return tableRow{UID: string(c.UID), Namespace: c.Namespace, Name: c.Name, Generation: c.Generation,
		Provider: opt(string(s.Provider)), ExternalID: opt(s.ExternalID), DisplayName: opt(s.DisplayName),
		CompanyName: opt(s.CompanyName), Email: opt(s.Email), Phone: opt(s.Phone), TaxID: opt(s.TaxID),
		Language: opt(s.Language), Lifecycle: opt(string(s.Lifecycle)), Spec: s, Labels: labels}
}

// expectTableEqualsCustomers compares the table with the namespace's live
// Customers (not being deleted, lifecycle not Deleted), row by row, field by field.
func (c *cluster) expectTableEqualsCustomers(g Gomega, conn *pgx.Conn, ns, table string) {
	list := &crmv1alpha1.CustomerList{}
	g.Expect(c.k8s.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
	want := map[string]tableRow{}
	for i := range list.Items {
		cu := &list.Items[i]
		if !cu.DeletionTimestamp.IsZero() || cu.Spec.Lifecycle == crmv1alpha1.LifecycleDeleted {
			continue
		}
		// Round-trip the spec through JSON as the table does.
		b, err := json.Marshal(cu.Spec)
		g.Expect(err).NotTo(HaveOccurred())
		cu.Spec = crmv1alpha1.CustomerSpec{}
		g.Expect(json.Unmarshal(b, &cu.Spec)).To(Succeed())
		want[string(cu.UID)] = expectedRow(cu)
	}
	got := readTable(g, conn, table)
	var diffs []string
	for uid, w := range want {
		r, ok := got[uid]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing row for %s (%s gen %d)", w.Name, uid, w.Generation))
		case !reflect.DeepEqual(r, w):
			diffs = append(diffs, fmt.Sprintf("row of %s differs:\n  table    %s\n  customer %s", w.Name, describe(r), describe(w)))
		}
	}
	for uid, r := range got {
		if _, ok := want[uid]; !ok {
			now := "no Customer of that name"
			for i := range list.Items {
				if cu := &list.Items[i]; cu.Name == r.Name {
					now = fmt.Sprintf("Customer %s now: uid %s gen %d lifecycle %s deleting %v", cu.Name, cu.UID, cu.Generation,
						cu.Spec.Lifecycle, !cu.DeletionTimestamp.IsZero())
				}
			}
			diffs = append(diffs, fmt.Sprintf("extra row %s (%s gen %d); %s", r.Name, uid, r.Generation, now))
		}
	}
	sort.Strings(diffs)
	g.Expect(diffs).To(BeEmpty())
}

func describe(r tableRow) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestPostgresSinkKeepsTheTableEqualToTheCustomers(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	srv := postgrestest.Start(t)
	c := startCluster(t)
	ctx := context.Background()
	ns := c.namespace(t)
	conn := srv.Connect(t)
	c.postgresSink(t, ns, "warehouse", srv, "127.0.0.1", "customers")

	g.Eventually(func(g Gomega) {
		cond := c.readyCondition(g, ns, "warehouse")
		g.Expect(cond.Status).To(Equal(metav1.ConditionTrue), cond.Message)
	}).Should(Succeed())

	acme := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme", Labels: map[string]string{"tier": "gold"}},
		Spec: crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_1", DisplayName: "Acme",
			Email: "billing@acme.example", Language: "fr"}}
	g.Expect(c.k8s.Create(ctx, acme)).To(Succeed())
	g.Eventually(func(g Gomega) { c.expectTableEqualsCustomers(g, conn, ns, "customers") }).Should(Succeed())
	g.Expect(readTable(g, conn, "customers")).To(HaveLen(1))

	// An update.
	c.update(g, acme, func() { acme.Spec.DisplayName, acme.Spec.Phone = "Acme Corp", "+33 1 23 45 67 89" })
	g.Eventually(func(g Gomega) {
		c.expectTableEqualsCustomers(g, conn, ns, "customers")
		g.Expect(readTable(g, conn, "customers")[string(acme.UID)].DisplayName).To(HaveValue(Equal("Acme Corp")))
	}).Should(Succeed())

	// A redelivery changes nothing: same generation, same row, same updated_at.
	var before time.Time
	g.Expect(conn.QueryRow(ctx, `SELECT updated_at FROM public.customers WHERE uid = $1`, string(acme.UID)).Scan(&before)).To(Succeed())
	sink := &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "warehouse"}}
	c.update(g, sink, func() { sink.Annotations = map[string]string{crmv1alpha1.AnnotationRedeliver: "again-1"} })
	g.Eventually(func(g Gomega) {
		g.Expect(c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "warehouse"}, sink)).To(Succeed())
		g.Expect(sink.Status.LastHandledRedeliver).To(Equal("again-1"))
	}).Should(Succeed())
	var after time.Time
	g.Expect(conn.QueryRow(ctx, `SELECT updated_at FROM public.customers WHERE uid = $1`, string(acme.UID)).Scan(&after)).To(Succeed())
	g.Expect(after).To(Equal(before), "a redelivery rewrote the row")

	// A delete removes the row.
	g.Expect(c.k8s.Delete(ctx, acme)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(readTable(g, conn, "customers")).To(BeEmpty())
		err := c.k8s.Get(ctx, client.ObjectKeyFromObject(acme), &crmv1alpha1.Customer{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the Customer is still there: %v", err)
	}).Should(Succeed())
}

func TestPostgresSinkCatchesUpAfterTheDatabaseWasDown(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(45 * time.Second)
	srv := postgrestest.Start(t)
	c := startCluster(t)
	ctx := context.Background()
	ns := c.namespace(t)
	c.postgresSink(t, ns, "warehouse", srv, "127.0.0.1", "customers")
	for i := range 10 {
		g.Expect(c.k8s.Create(ctx, &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c%d", i)},
			Spec: crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("Customer %d", i)}})).To(Succeed())
	}
	conn := srv.Connect(t)
	g.Eventually(func(g Gomega) { c.expectTableEqualsCustomers(g, conn, ns, "customers") }).Should(Succeed())
	g.Expect(conn.Close(ctx)).To(Succeed())

	srv.Stop(t)
	for i := range 10 {
		cu := &crmv1alpha1.Customer{}
		g.Expect(c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("c%d", i)}, cu)).To(Succeed())
		if i%3 == 0 {
			g.Expect(c.k8s.Delete(ctx, cu)).To(Succeed())
			continue
		}
		c.update(g, cu, func() { cu.Spec.DisplayName = fmt.Sprintf("Customer %d, renamed while the database was down", i) })
	}
	// The sink says it is backing off, with a message free of the password.
	g.Eventually(func(g Gomega) {
		sink := &crmv1alpha1.CustomerSink{}
		g.Expect(c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "warehouse"}, sink)).To(Succeed())
		rec := meta.FindStatusCondition(sink.Status.Conditions, "Reconciling")
		g.Expect(rec).NotTo(BeNil())
		g.Expect(rec.Reason).To(Equal("BackingOff"))
		g.Expect(rec.Message).NotTo(ContainSubstring(postgrestest.Password))
		t.Logf("while the database is down: %s", rec.Message)
	}).Should(Succeed())

	srv.Restart(t)
	conn = srv.Connect(t)
	g.Eventually(func(g Gomega) {
		c.expectTableEqualsCustomers(g, conn, ns, "customers")
		g.Expect(readTable(g, conn, "customers")).To(HaveLen(6))
	}).Should(Succeed())
}

func TestPostgresSinkReadinessSaysWhatIsWrong(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(20 * time.Second)
	srv := postgrestest.Start(t)
	c := startCluster(t)
	ctx := context.Background()
	ns := c.namespace(t)

	// A database at an address the policy denies: not Ready, and nothing dialled.
	c.postgresSink(t, ns, "denied", srv, "127.0.0.2", "denied_rows")
	g.Expect(c.k8s.Create(ctx, &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"},
		Spec: crmv1alpha1.CustomerSpec{DisplayName: "Acme"}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := c.readyCondition(g, ns, "denied")
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(cond.Reason).To(Equal(crmv1alpha1.ReasonAddressNotAllowed))
		g.Expect(cond.Message).To(ContainSubstring("127.0.0.2"))
	}).Should(Succeed())

	// A Secret without a user.
	g.Expect(c.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-user"},
		StringData: map[string]string{"host": "127.0.0.1", "password": postgrestest.Password}})).To(Succeed())
	g.Expect(c.k8s.Create(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-user"},
		Spec: crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, Postgres: &crmv1alpha1.PostgresSink{},
			SecretRef: &crmv1alpha1.SecretReference{Name: "no-user"}}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := c.readyCondition(g, ns, "no-user")
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(cond.Reason).To(Equal(crmv1alpha1.ReasonSecretInvalid))
		g.Expect(cond.Message).To(Equal(`Secret key "user": names no user`))
	}).Should(Succeed())

	// A DSN asking the operator to read one of its own files.
	g.Expect(c.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rootcert"},
		StringData: map[string]string{"dsn": "host=db user=app password=" + postgrestest.Password + " sslrootcert=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"}})).To(Succeed())
	g.Expect(c.k8s.Create(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rootcert"},
		Spec: crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, Postgres: &crmv1alpha1.PostgresSink{},
			SecretRef: &crmv1alpha1.SecretReference{Name: "rootcert"}}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := c.readyCondition(g, ns, "rootcert")
		g.Expect(cond.Reason).To(Equal(crmv1alpha1.ReasonSecretInvalid))
		g.Expect(cond.Message).To(ContainSubstring(`setting "sslrootcert" is not supported`))
		g.Expect(cond.Message).NotTo(ContainSubstring(postgrestest.Password))
	}).Should(Succeed())

	// A type this build cannot deliver to.
	g.Expect(c.k8s.Create(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stream"},
		Spec: crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeKafka,
			Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{"127.0.0.1:9092"}, Topic: "customers"}}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := c.readyCondition(g, ns, "stream")
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		if strings.Contains(cond.Message, "not supported") {
			g.Expect(cond.Reason).To(Equal(crmv1alpha1.ReasonInvalidSpec))
		}
	}).Should(Succeed())

	// Nothing of the denied sink reached the server.
	var n int
	g.Expect(srv.Connect(t).QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'denied_rows'`).Scan(&n)).To(Succeed())
	g.Expect(n).To(BeZero())
}

// TestPostgresSinkPropertyTableEqualsCustomers applies a random sequence of
// creates, updates and deletes to many Customers, with the database stopped and
// started again midway, and then compares the table with the Customers.
func TestPostgresSinkPropertyTableEqualsCustomers(t *testing.T) {
	const ops, customers = 200, 40
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PROPERTY_SEED"); s != "" {
		_, _ = fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d (PROPERTY_SEED=%d reproduces the sequence)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(60 * time.Second)
	srv := postgrestest.Start(t)
	c := startCluster(t)
	ctx := context.Background()
	ns := c.namespace(t)
	c.postgresSink(t, ns, "warehouse", srv, "127.0.0.1", "customer_rows")

	languages := []string{"", "en", "fr", "de"}
	lifecycles := []crmv1alpha1.Lifecycle{crmv1alpha1.LifecycleActive, crmv1alpha1.LifecycleActive, crmv1alpha1.LifecycleDeleted}
	tiers := []string{"", "gold", "silver"}
	randomSpec := func(spec *crmv1alpha1.CustomerSpec, labels map[string]string, i int) {
		spec.DisplayName = fmt.Sprintf("Customer %d v%d", i, rng.IntN(1000))
		spec.Email = []string{"", fmt.Sprintf("c%d@example.com", i)}[rng.IntN(2)]
		spec.CompanyName = []string{"", "Acme", "Initech"}[rng.IntN(3)]
		spec.Language = languages[rng.IntN(len(languages))]
		spec.Lifecycle = lifecycles[rng.IntN(len(lifecycles))]
		spec.Attributes = map[string]string{"score": fmt.Sprint(rng.IntN(100))}
		if tier := tiers[rng.IntN(len(tiers))]; tier != "" {
			labels["tier"] = tier
		} else {
			delete(labels, "tier")
		}
	}
	var stopped bool
	for op := range ops {
		if op == ops/2 {
			srv.Stop(t)
			stopped = true
		}
		if stopped && op == ops/2+ops/5 {
			srv.Restart(t)
			stopped = false
		}
		i := rng.IntN(customers)
		key := client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("c%02d", i)}
		cu := &crmv1alpha1.Customer{}
		err := c.k8s.Get(ctx, key, cu)
		switch {
		case apierrors.IsNotFound(err):
			cu = &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name, Labels: map[string]string{}}}
			randomSpec(&cu.Spec, cu.Labels, i)
			g.Expect(c.k8s.Create(ctx, cu)).To(Succeed())
		case err != nil:
			t.Fatal(err)
		case !cu.DeletionTimestamp.IsZero():
			// Still being deleted: its delete waits for the sink.
		case rng.IntN(4) == 0:
			g.Expect(c.k8s.Delete(ctx, cu)).To(Succeed())
		default:
			if cu.Labels == nil {
				cu.Labels = map[string]string{}
			}
			randomSpec(&cu.Spec, cu.Labels, i)
			if err := c.k8s.Update(ctx, cu); err != nil && !apierrors.IsConflict(err) {
				t.Fatal(err)
			}
		}
		if op%10 == 0 {
			time.Sleep(20 * time.Millisecond) // let some deliveries interleave with the changes
		}
	}
	conn := srv.Connect(t)
	g.Eventually(func(g Gomega) {
		list := &crmv1alpha1.CustomerList{}
		g.Expect(c.k8s.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		for _, cu := range list.Items {
			g.Expect(cu.DeletionTimestamp.IsZero()).To(BeTrue(), "%s is still being deleted", cu.Name)
		}
		c.expectTableEqualsCustomers(g, conn, ns, "customer_rows")
	}).Should(Succeed())
	rows := readTable(g, conn, "customer_rows")
	t.Logf("%d ops over %d Customers: %d rows equal to the live Customers", ops, customers, len(rows))
}

// TestPostgresSinkKeepsItsConnectionsThroughItsStatusWrites: the sink's own
// status changes (its counts, as Customers sync) leave its Sender, and so its
// pool, as they are; only its spec or its Secret make new ones.
func TestPostgresSinkKeepsItsConnectionsThroughItsStatusWrites(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	srv := postgrestest.Start(t)
	c := startCluster(t)
	ctx := context.Background()
	ns := c.namespace(t)
	conn := srv.Connect(t)
	backends := func(g Gomega) []int {
		pids, err := postgrestest.Backends(ctx, conn, "steady")
		g.Expect(err).NotTo(HaveOccurred())
		return pids
	}
	c.dsnSink(g, ns, "warehouse", srv.ApplicationDSN("steady"), crmv1alpha1.PostgresSink{MaxConns: 1})
	sink := &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "warehouse"}}
	customer := func(i int) {
		g.Expect(c.k8s.Create(ctx, &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c%d", i)},
			Spec: crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("Customer %d", i)}})).To(Succeed())
		g.Eventually(func(g Gomega) {
			c.expectTableEqualsCustomers(g, conn, ns, "customers")
			g.Expect(readTable(g, conn, "customers")).To(HaveLen(i + 1))
		}).Should(Succeed())
	}
	customer(0)
	var first []int
	g.Eventually(func(g Gomega) {
		first = backends(g)
		g.Expect(first).To(HaveLen(1))
	}).Should(Succeed())
	g.Expect(c.k8s.Get(ctx, client.ObjectKeyFromObject(sink), sink)).To(Succeed())
	version := sink.ResourceVersion

	for i := 1; i <= 10; i++ {
		customer(i)
	}
	g.Eventually(func(g Gomega) {
		g.Expect(c.k8s.Get(ctx, client.ObjectKeyFromObject(sink), sink)).To(Succeed())
		g.Expect(sink.Status.Synced).To(BeNumerically("==", 11))
	}).Should(Succeed())
	g.Expect(sink.ResourceVersion).NotTo(Equal(version), "the sink's status was written meanwhile")
	g.Expect(sink.Generation).To(BeNumerically("==", 1))
	g.Expect(backends(g)).To(Equal(first), "the sink's one connection served every delivery, through its status writes")
}

// TestPostgresSinkConnectionsFollowTheSink: a changed Secret replaces the sink's
// pool, the old one closed; a deleted sink holds no connection.
func TestPostgresSinkConnectionsFollowTheSink(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	srv := postgrestest.Start(t)
	c := startCluster(t)
	ctx := context.Background()
	ns := c.namespace(t)
	conn := srv.Connect(t)
	connections := func(g Gomega, app string) int {
		n, err := postgrestest.Connections(ctx, conn, app)
		g.Expect(err).NotTo(HaveOccurred())
		return n
	}
	secret := c.dsnSink(g, ns, "warehouse", srv.ApplicationDSN("sink-v1"), crmv1alpha1.PostgresSink{MaxConns: 2})
	for i := range 20 {
		g.Expect(c.k8s.Create(ctx, &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c%d", i)},
			Spec: crmv1alpha1.CustomerSpec{DisplayName: "first"}})).To(Succeed())
	}
	g.Eventually(func(g Gomega) {
		c.expectTableEqualsCustomers(g, conn, ns, "customers")
		g.Expect(readTable(g, conn, "customers")).To(HaveLen(20))
	}).Should(Succeed())
	g.Expect(connections(g, "sink-v1")).To(And(BeNumerically(">=", 1), BeNumerically("<=", 2)), "the pool holds maxConns at most")

	// A new Secret: a new pool, and the old one's connections go.
	c.update(g, secret, func() { secret.Data = map[string][]byte{"dsn": []byte(srv.ApplicationDSN("sink-v2"))} })
	cu := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c0"}}
	c.update(g, cu, func() { cu.Spec.DisplayName = "second" })
	g.Eventually(func(g Gomega) {
		g.Expect(readTable(g, conn, "customers")[string(cu.UID)].DisplayName).To(HaveValue(Equal("second")))
		g.Expect(connections(g, "sink-v1")).To(BeZero())
		g.Expect(connections(g, "sink-v2")).To(BeNumerically(">=", 1))
	}).Should(Succeed())

	// The sink deleted: no connection is left.
	g.Expect(c.k8s.Delete(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "warehouse"}})).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(connections(g, "sink-v2")).To(BeZero()) }).Should(Succeed())
}

// TestPostgresSinkConnectionsStayWithinTheNamespaceLimit: a sink whose pool
// may open more connections than its namespace may hold delivers everything
// on those it may; another namespace still gets its own; a second sink of the
// full namespace says why it cannot connect, and catches up once the first
// one's connections close.
func TestPostgresSinkConnectionsStayWithinTheNamespaceLimit(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(60 * time.Second)
	srv := postgrestest.Start(t)
	c := startCluster(t)
	ctx := context.Background()
	conn := srv.Connect(t)
	// The sampler has a connection of its own: one pgx.Conn runs one query at a time.
	statConn := srv.Connect(t)
	var statMu sync.Mutex
	connections := func(app string) (int, error) {
		statMu.Lock()
		defer statMu.Unlock()
		return postgrestest.Connections(ctx, statConn, app)
	}
	sink := func(ns, name, app, table string) {
		c.dsnSink(g, ns, name, srv.ApplicationDSN(app), crmv1alpha1.PostgresSink{Table: table, MaxConns: 2 * connectionsPerNamespace})
	}
	customers := func(ns string, n int) {
		for i := range n {
			g.Expect(c.k8s.Create(ctx, &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c%d", i)},
				Spec: crmv1alpha1.CustomerSpec{DisplayName: fmt.Sprintf("Customer %d", i)}})).To(Succeed())
		}
	}

	// Count the busy sink's connections, server side, while it backfills.
	tenant := c.namespace(t)
	var most atomic.Int32
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			if n, err := connections("busy"); err == nil && int32(n) > most.Load() {
				most.Store(int32(n))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	customers(tenant, 300)
	sink(tenant, "busy", "busy", "busy_rows")
	g.Eventually(func(g Gomega) {
		c.expectTableEqualsCustomers(g, conn, tenant, "busy_rows")
		g.Expect(readTable(g, conn, "busy_rows")).To(HaveLen(300))
	}).Should(Succeed())
	stopSampling()
	<-sampled
	g.Expect(most.Load()).To(And(BeNumerically(">=", 1), BeNumerically("<=", connectionsPerNamespace)),
		"open connections of a sink whose pool may hold %d", 2*connectionsPerNamespace)
	t.Logf("the busy sink held %d connections at most", most.Load())

	// Its idle connections stay open for a while: another namespace is not
	// held back by them.
	other := c.namespace(t)
	customers(other, 20)
	sink(other, "neighbour", "neighbour", "neighbour_rows")
	g.Eventually(func(g Gomega) {
		c.expectTableEqualsCustomers(g, conn, other, "neighbour_rows")
		g.Expect(readTable(g, conn, "neighbour_rows")).To(HaveLen(20))
	}).Should(Succeed())

	// A second sink of the full namespace cannot connect: it says so, with
	// an Event and a metric.
	if n, err := connections("busy"); err != nil || n != connectionsPerNamespace {
		t.Fatalf("the busy sink holds %d idle connections (%v); the test needs it to hold the namespace's %d", n, err, connectionsPerNamespace)
	}
	refused := refusedConnections(g, "namespace")
	sink(tenant, "starved", "starved", "starved_rows")
	g.Eventually(func(g Gomega) {
		cond := c.readyCondition(g, tenant, "starved")
		g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(cond.Reason).To(Equal("ConnectionLimit"))
		g.Expect(cond.Message).To(ContainSubstring(fmt.Sprintf("the sinks of namespace %s hold %d open database and broker connections", tenant, connectionsPerNamespace)))
		g.Expect(cond.Message).To(ContainSubstring("--sink-max-connections-per-namespace"))
		events := &corev1.EventList{}
		g.Expect(c.k8s.List(ctx, events, client.InNamespace(tenant))).To(Succeed())
		var reasons []string
		for _, e := range events.Items {
			if e.InvolvedObject.Name == "starved" {
				reasons = append(reasons, e.Reason)
			}
		}
		g.Expect(reasons).To(ContainElement("ConnectionLimit"))
		g.Expect(refusedConnections(g, "namespace")).To(BeNumerically(">", refused))
	}).Should(Succeed())
	n, err := connections("starved")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(BeZero())

	// The busy sink deleted, its connections close and the other catches up.
	g.Expect(c.k8s.Delete(ctx, &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "busy"}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		c.expectTableEqualsCustomers(g, conn, tenant, "starved_rows")
		g.Expect(readTable(g, conn, "starved_rows")).To(HaveLen(300))
		g.Expect(c.readyCondition(g, tenant, "starved").Status).To(Equal(metav1.ConditionTrue))
	}).Should(Succeed())
}

// refusedConnections reads customer_operator_sink_connections_refused_total
// for one limit from the manager's registry.
func refusedConnections(g Gomega, limit string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != "customer_operator_sink_connections_refused_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "limit" && l.GetValue() == limit {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
