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

package controllers

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
)

var _ = Describe("CRD validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	// expectInvalid creates obj and expects the API server to refuse it as Invalid,
	// with a message that names what a user must fix.
	expectInvalid := func(obj client.Object, wantInMessage ...string) {
		GinkgoHelper()
		err := k8sClient.Create(ctx, obj)
		Expect(err).To(HaveOccurred(), "the API server accepted %T %s", obj, obj.GetName())
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
		for _, s := range wantInMessage {
			Expect(err.Error()).To(ContainSubstring(s))
		}
	}

	It("accepts a valid Customer and defaults its lifecycle and address type", func() {
		c := newCustomer(ns, "valid", crmv1alpha1.CustomerSpec{
			Provider:   crmv1alpha1.ProviderGETTRX,
			ExternalID: "cus_1",
			Addresses:  []crmv1alpha1.Address{{City: "Lyon"}},
		})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		got := getCustomer(Default, ns, "valid")
		Expect(got.Spec.Lifecycle).To(Equal(crmv1alpha1.LifecycleActive))
		Expect(got.Spec.Addresses[0].Type).To(Equal(crmv1alpha1.AddressOther))
	})

	It("refuses a Customer with an unknown lifecycle, naming spec.lifecycle", func() {
		expectInvalid(newCustomer(ns, "bad-lifecycle", crmv1alpha1.CustomerSpec{Lifecycle: "Gone"}),
			"spec.lifecycle", `"Gone"`)
	})

	It("refuses a Customer with an unknown address type, naming the address", func() {
		expectInvalid(newCustomer(ns, "bad-address", crmv1alpha1.CustomerSpec{
			Addresses: []crmv1alpha1.Address{{Type: "billing"}, {Type: "home"}},
		}), "spec.addresses[1].type", `"home"`)
	})

	It("refuses a Customer with a provider but no externalID (CEL rule)", func() {
		expectInvalid(newCustomer(ns, "no-external-id", crmv1alpha1.CustomerSpec{Provider: crmv1alpha1.ProviderPhasio}),
			"spec", "externalID is required when provider is set")
	})

	It("refuses a Customer with an unknown provider, naming spec.provider", func() {
		expectInvalid(newCustomer(ns, "bad-provider", crmv1alpha1.CustomerSpec{Provider: "stripe", ExternalID: "x"}),
			"spec.provider", `"stripe"`)
	})

	It("refuses a CustomerSink with an ftp:// url, naming spec.url", func() {
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ftp"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL:       "ftp://example.com/customers",
				Format:    crmv1alpha1.FormatCloudEvents,
				SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
			},
		}, "spec.url", "url must be an absolute http or https URL")
	})

	It("refuses a standard-webhooks CustomerSink without secretRef, also when the format is defaulted", func() {
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unsigned"},
			Spec:       crmv1alpha1.CustomerSinkSpec{URL: "https://example.com/hook", Format: crmv1alpha1.FormatStandardWebhooks},
		}, "spec", "secretRef is required for the standard-webhooks format")
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unsigned-default"},
			Spec:       crmv1alpha1.CustomerSinkSpec{URL: "https://example.com/hook"},
		}, "spec", "secretRef is required for the standard-webhooks format")
	})

	It("refuses a CustomerSink with an unknown format, naming spec.format", func() {
		expectInvalid(&crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-format"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL:       "https://example.com/hook",
				Format:    "xml",
				SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
			},
		}, "spec.format", `"xml"`)
	})

	It("refuses a CustomerSink whose timeout is over 60s, naming spec.timeout, and accepts 60s", func() {
		sink := func(name, timeout string) *crmv1alpha1.CustomerSink {
			d, err := time.ParseDuration(timeout)
			Expect(err).NotTo(HaveOccurred())
			return &crmv1alpha1.CustomerSink{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: crmv1alpha1.CustomerSinkSpec{
					URL:       "https://example.com/hook",
					Format:    crmv1alpha1.FormatCloudEvents,
					SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
					Timeout:   &metav1.Duration{Duration: d},
				},
			}
		}
		expectInvalid(sink("a-year", "8760h"), "spec.timeout", "timeout must be at most 60s")
		expectInvalid(sink("just-over", "60.001s"), "spec.timeout", "timeout must be at most 60s")
		Expect(k8sClient.Create(ctx, sink("a-minute", "60s"))).To(Succeed())
	})

	It("defaults a CustomerSink's type to http and a postgres block's schema, table and pool size", func() {
		Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				URL: "https://example.com/hook", Format: crmv1alpha1.FormatCloudEvents,
			},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				Type:      crmv1alpha1.SinkTypePostgres,
				Postgres:  &crmv1alpha1.PostgresSink{},
				SecretRef: &crmv1alpha1.SecretReference{Name: "db"},
			},
		})).To(Succeed())
		var web, db crmv1alpha1.CustomerSink
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, &web)).To(Succeed())
		Expect(web.Spec.Type).To(Equal(crmv1alpha1.SinkTypeHTTP))
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &db)).To(Succeed())
		Expect(*db.Spec.Postgres).To(Equal(crmv1alpha1.PostgresSink{Schema: "public", Table: "customers", MaxConns: 4}))
	})

	It("accepts one CustomerSink of each type with its own block", func() {
		for _, spec := range []crmv1alpha1.CustomerSinkSpec{
			{Type: crmv1alpha1.SinkTypeHTTP, URL: "https://example.com/hook", SecretRef: &crmv1alpha1.SecretReference{Name: "s"}},
			{Type: crmv1alpha1.SinkTypePostgres, SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
				Postgres: &crmv1alpha1.PostgresSink{Schema: "crm", Table: "customer_rows", MaxConns: 16}},
			{Type: crmv1alpha1.SinkTypeKafka, SecretRef: &crmv1alpha1.SecretReference{Name: "s"},
				Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{"kafka-0.kafka:9092", "10.0.0.7:9093"}, Topic: "crm.customers", SASL: "SCRAM-SHA-512", TLS: true}},
			{Type: crmv1alpha1.SinkTypeNATS,
				NATS: &crmv1alpha1.NATSSink{URL: "nats://nats.messaging:4222", Stream: "CUSTOMERS", SubjectPrefix: "crm.customers", KVBucket: "customers"}},
		} {
			Expect(k8sClient.Create(ctx, &crmv1alpha1.CustomerSink{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: string(spec.Type)},
				Spec:       spec,
			})).To(Succeed(), "type %s", spec.Type)
		}
	})

	It("refuses a CustomerSink whose member block does not match its type, naming the rule", func() {
		sink := func(name string, spec crmv1alpha1.CustomerSinkSpec) *crmv1alpha1.CustomerSink {
			return &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		}
		secret := &crmv1alpha1.SecretReference{Name: "s"}
		pg := &crmv1alpha1.PostgresSink{}
		expectInvalid(sink("http-no-url", crmv1alpha1.CustomerSinkSpec{Format: crmv1alpha1.FormatCloudEvents}),
			"spec", "url is required when type is http")
		expectInvalid(sink("pg-with-url", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, Postgres: pg, SecretRef: secret,
			URL: "https://example.com/hook"}), "spec", "url is only for type http")
		expectInvalid(sink("pg-no-block", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, SecretRef: secret}),
			"spec", "postgres is required when type is postgres, and only then")
		expectInvalid(sink("http-with-pg", crmv1alpha1.CustomerSinkSpec{URL: "https://example.com/hook", SecretRef: secret, Postgres: pg}),
			"spec", "postgres is required when type is postgres, and only then")
		expectInvalid(sink("pg-no-secret", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, Postgres: pg}),
			"spec", "secretRef is required when type is postgres")
		expectInvalid(sink("kafka-no-block", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeKafka}),
			"spec", "kafka is required when type is kafka, and only then")
		expectInvalid(sink("kafka-sasl-no-secret", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeKafka,
			Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{"kafka:9092"}, Topic: "customers", SASL: "PLAIN"}}),
			"spec", "secretRef is required when kafka.sasl is set")
		expectInvalid(sink("nats-with-kafka", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeNATS,
			NATS:  &crmv1alpha1.NATSSink{URL: "nats://nats:4222", Stream: "CUSTOMERS"},
			Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{"kafka:9092"}, Topic: "customers"}}),
			"spec", "kafka is required when type is kafka, and only then")
		expectInvalid(sink("smtp", crmv1alpha1.CustomerSinkSpec{Type: "smtp"}), "spec.type", `"smtp"`)
	})

	It("refuses malformed postgres, kafka and nats fields, naming each field", func() {
		sink := func(name string, spec crmv1alpha1.CustomerSinkSpec) *crmv1alpha1.CustomerSink {
			return &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
		}
		secret := &crmv1alpha1.SecretReference{Name: "s"}
		expectInvalid(sink("pg-injection", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, SecretRef: secret,
			Postgres: &crmv1alpha1.PostgresSink{Table: `customers"; DROP TABLE x; --`}}), "spec.postgres.table")
		expectInvalid(sink("pg-upper", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, SecretRef: secret,
			Postgres: &crmv1alpha1.PostgresSink{Schema: "Public"}}), "spec.postgres.schema")
		expectInvalid(sink("pg-pool", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypePostgres, SecretRef: secret,
			Postgres: &crmv1alpha1.PostgresSink{MaxConns: 17}}), "spec.postgres.maxConns")
		expectInvalid(sink("kafka-no-brokers", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeKafka,
			Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{}, Topic: "customers"}}), "spec.kafka.brokers")
		expectInvalid(sink("kafka-bad-broker", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeKafka,
			Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{"http://kafka:9092"}, Topic: "customers"}}), "spec.kafka.brokers[0]")
		expectInvalid(sink("kafka-bad-topic", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeKafka,
			Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{"kafka:9092"}, Topic: "a topic"}}), "spec.kafka.topic")
		expectInvalid(sink("kafka-bad-sasl", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeKafka, SecretRef: secret,
			Kafka: &crmv1alpha1.KafkaSink{Brokers: []string{"kafka:9092"}, Topic: "customers", SASL: "GSSAPI"}}), "spec.kafka.sasl", `"GSSAPI"`)
		expectInvalid(sink("nats-http", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeNATS,
			NATS: &crmv1alpha1.NATSSink{URL: "https://nats:4222", Stream: "CUSTOMERS"}}), "spec.nats.url", "url must be an absolute nats or tls URL")
		expectInvalid(sink("nats-bad-stream", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeNATS,
			NATS: &crmv1alpha1.NATSSink{URL: "nats://nats:4222", Stream: "CUSTOMERS.>"}}), "spec.nats.stream")
		expectInvalid(sink("nats-bad-prefix", crmv1alpha1.CustomerSinkSpec{Type: crmv1alpha1.SinkTypeNATS,
			NATS: &crmv1alpha1.NATSSink{URL: "nats://nats:4222", Stream: "CUSTOMERS", SubjectPrefix: "customers.*"}}), "spec.nats.subjectPrefix")
	})

	It("refuses a CustomerSource with an unknown provider, naming spec.provider", func() {
		expectInvalid(&crmv1alpha1.CustomerSource{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad-provider"},
			Spec: crmv1alpha1.CustomerSourceSpec{
				Provider:  "stripe",
				SecretRef: crmv1alpha1.SecretReference{Name: "s"},
			},
		}, "spec.provider", `"stripe"`)
	})
})
