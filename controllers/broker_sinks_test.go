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
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

// brokerRecord is one message as a consumer of the topic or stream sees it.
type brokerRecord struct {
	Key, ID, Type string
	Generation    int64
	Email         string
	Tombstone     bool
}

func parseCloudEvent(value []byte) brokerRecord {
	GinkgoHelper()
	var ce struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Metadata struct {
				Generation int64 `json:"generation"`
			} `json:"metadata"`
			Spec crmv1alpha1.CustomerSpec `json:"spec"`
		} `json:"data"`
	}
	Expect(json.Unmarshal(value, &ce)).To(Succeed(), "value %s", value)
	return brokerRecord{ID: ce.ID, Type: ce.Type, Generation: ce.Data.Metadata.Generation, Email: ce.Data.Spec.Email}
}

var _ = Describe("Kafka and NATS JetStream sinks", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("accepts the Kafka and NATS samples as they are documented", func() {
		for _, sample := range []string{"crm_v1alpha1_customersink_kafka.yaml", "crm_v1alpha1_customersink_nats.yaml"} {
			raw, err := os.ReadFile(filepath.Join("..", "config", "samples", sample))
			Expect(err).NotTo(HaveOccurred())
			docs := strings.Split(string(raw), "\n---\n")
			Expect(docs).To(HaveLen(2), sample)
			secret := &corev1.Secret{}
			Expect(yaml.UnmarshalStrict([]byte(docs[0]), secret)).To(Succeed(), sample)
			sink := &crmv1alpha1.CustomerSink{}
			Expect(yaml.UnmarshalStrict([]byte(docs[1]), sink)).To(Succeed(), sample)
			secret.Namespace, sink.Namespace = ns, ns
			Expect(k8sClient.Create(ctx, secret)).To(Succeed(), sample)
			Expect(k8sClient.Create(ctx, sink)).To(Succeed(), sample)
			expectSinkReady(ns, sink.Name, metav1.ConditionTrue, crmv1alpha1.ReasonValid)
		}
	})

	// customerLifecycle creates, updates and deletes a Customer selected by
	// sink, and checks after each step what read() finds at the broker.
	// whileLive, when not nil, runs once the update is delivered.
	customerLifecycle := func(sink string, read func() []brokerRecord, whileLive func(c *crmv1alpha1.Customer)) {
		GinkgoHelper()
		c := newCustomer(ns, "stream-cus-1", crmv1alpha1.CustomerSpec{
			Provider: crmv1alpha1.ProviderGETTRX, ExternalID: "cus_1", DisplayName: "Ada", Email: "ada@example.com",
		})
		Expect(k8sClient.Create(ctx, c)).To(Succeed())
		first := expectSynced(ns, c.Name, sink)
		Eventually(read).Should(ContainElement(And(
			HaveField("ID", eventID(first)), HaveField("Type", delivery.CloudEventsTypePrefix+delivery.TypeUpserted),
			HaveField("Email", "ada@example.com"))))

		updateCustomer(ns, c.Name, func(c *crmv1alpha1.Customer) { c.Spec.Email = "ada@new.example.com" })
		second := expectSynced(ns, c.Name, sink)
		Expect(second.Generation).To(BeNumerically(">", first.Generation))
		Eventually(read).Should(ContainElement(And(
			HaveField("ID", eventID(second)), HaveField("Email", "ada@new.example.com"))))
		if whileLive != nil {
			whileLive(second)
		}

		Expect(k8sClient.Delete(ctx, second)).To(Succeed())
		expectGone(second, 30*time.Second)
		Eventually(read).Should(ContainElement(And(
			HaveField("Key", string(second.UID)), HaveField("Type", delivery.CloudEventsTypePrefix+delivery.TypeDeleted))))
	}

	It("keeps a Kafka topic in step with the Customers: their CloudEvents keyed by uid, a delete ending in a tombstone", func() {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "crm.customers"))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Close)
		sink := &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "events"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				Type:    crmv1alpha1.SinkTypeKafka,
				Kafka:   &crmv1alpha1.KafkaSink{Brokers: cluster.ListenAddrs(), Topic: "crm.customers"},
				Timeout: &metav1.Duration{Duration: 5 * time.Second},
			},
		}
		Expect(k8sClient.Create(ctx, sink)).To(Succeed())
		expectSinkReady(ns, sink.Name, metav1.ConditionTrue, crmv1alpha1.ReasonValid)

		consumer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("crm.customers"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(consumer.Close)
		var seen []brokerRecord
		read := func() []brokerRecord {
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			consumer.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
				if r.Value == nil {
					seen = append(seen, brokerRecord{Key: string(r.Key), Tombstone: true})
					return
				}
				br := parseCloudEvent(r.Value)
				br.Key = string(r.Key)
				seen = append(seen, br)
			})
			return seen
		}
		customerLifecycle(sink.Name, read, nil)
		Eventually(read).Should(HaveLen(4), "an upsert, an update, the deleted event and the tombstone")
		Expect(seen[3].Tombstone).To(BeTrue(), "the last record of a deleted Customer is its tombstone")
		Expect(seen[3].Key).To(Equal(seen[0].Key))
	})

	It("publishes the Customers to a NATS JetStream stream, de-duplicated by Nats-Msg-Id, and keeps the live ones in a KV bucket", func() {
		srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
			StoreDir: GinkgoT().TempDir(), NoSigs: true, NoLog: true})
		Expect(err).NotTo(HaveOccurred())
		srv.Start()
		DeferCleanup(srv.Shutdown)
		Expect(srv.ReadyForConnections(10 * time.Second)).To(BeTrue())
		nc, err := nats.Connect(srv.ClientURL())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(nc.Close)
		js, err := jetstream.New(nc)
		Expect(err).NotTo(HaveOccurred())
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CUSTOMERS", Subjects: []string{"crm.>"}})
		Expect(err).NotTo(HaveOccurred())
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "customers"})
		Expect(err).NotTo(HaveOccurred())

		sink := &crmv1alpha1.CustomerSink{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stream"},
			Spec: crmv1alpha1.CustomerSinkSpec{
				Type: crmv1alpha1.SinkTypeNATS,
				NATS: &crmv1alpha1.NATSSink{URL: srv.ClientURL(), Stream: "CUSTOMERS", SubjectPrefix: "crm", KVBucket: "customers"},
			},
		}
		Expect(k8sClient.Create(ctx, sink)).To(Succeed())
		expectSinkReady(ns, sink.Name, metav1.ConditionTrue, crmv1alpha1.ReasonValid)

		read := func() []brokerRecord {
			info, err := st.Info(ctx)
			Expect(err).NotTo(HaveOccurred())
			var out []brokerRecord
			for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
				m, err := st.GetMsg(ctx, seq)
				Expect(err).NotTo(HaveOccurred())
				Expect(m.Subject).To(Equal("crm." + ns + ".stream-cus-1"))
				br := parseCloudEvent(m.Data)
				Expect(m.Header.Get(jetstream.MsgIDHeader)).To(Equal(br.ID))
				br.Key = br.ID[:strings.LastIndex(br.ID, ".")]
				out = append(out, br)
			}
			return out
		}
		kvGeneration := func() int64 {
			e, err := kv.Get(ctx, ns+".stream-cus-1")
			if err != nil {
				return 0
			}
			return parseCloudEvent(e.Value()).Generation
		}
		customerLifecycle(sink.Name, read, func(c *crmv1alpha1.Customer) {
			Eventually(kvGeneration).Should(Equal(c.Generation), "the KV bucket holds the live Customer")
		})
		Eventually(kvGeneration).Should(BeZero(), "the deleted Customer's KV key is gone")
		Expect(read()).To(HaveLen(3), "an upsert, an update and the deleted event, each once")
	})
})
