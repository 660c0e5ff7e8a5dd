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

package kafka

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/test/testcert"
)

const topic = "customers"

// allowAll lets the tests reach the in-process cluster on loopback, which the
// default policy denies.
var allowAll = delivery.AddressPolicy{Deny: []netip.Prefix{}}

func customer(name string, uid types.UID, generation int64, email string) *crmv1alpha1.Customer {
	return &crmv1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant-a", Name: name, UID: uid, Generation: generation},
		Spec: crmv1alpha1.CustomerSpec{
			Provider: "stripe", ExternalID: "cus_" + name, DisplayName: name, Email: email,
		},
	}
}

// eventTime is recent: kfake applies the default retention.ms (7 days) to
// compacted topics too, where Kafka applies it only with cleanup.policy=delete.
var eventTime = time.Now().UTC().Add(-time.Minute).Truncate(time.Second)

func upsert(c *crmv1alpha1.Customer) delivery.Event {
	return delivery.NewEvent(c, false, eventTime)
}

func deleted(c *crmv1alpha1.Customer) delivery.Event {
	c = c.DeepCopy()
	c.Generation++
	return delivery.NewEvent(c, true, eventTime.Add(time.Second))
}

// newCluster starts an in-process Kafka cluster (franz-go's kfake: no real
// broker can be installed here) with a compacted topic of three partitions.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// createCompactedTopic makes the topic as a team keeping "the live Customers"
// would: cleanup.policy=compact, tombstones dropped at the next compaction.
func createCompactedTopic(t testing.TB, c *kfake.Cluster, partitions int32) {
	t.Helper()
	if err := c.CreateTopic(topic, partitions, map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "0"}); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
}

// compact runs the cluster's log cleaner. Kafka never cleans the active
// segment, and kfake keeps each partition's last batch likewise: a record of
// another key closes the Customers' batches first.
func compact(t testing.TB, c *kfake.Cluster, addrs []string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte("sentinel"), Value: []byte("{}")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c.Compact()
}

func newSender(t testing.TB, cfg Config, policy delivery.AddressPolicy) *Sender {
	t.Helper()
	s, err := New(cfg, policy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func mustDeliver(t testing.TB, s *Sender, ev delivery.Event) {
	t.Helper()
	if res := s.Deliver(context.Background(), ev); res.Err != nil {
		t.Fatalf("delivering %s %s: %v", ev.Type, ev.ID, res.Err)
	}
}

// readAll consumes the whole topic from the start, waiting for at least want
// records, and returns them in partition order per key.
func readAll(t testing.TB, addrs []string, want int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < want {
		if time.Now().After(deadline) {
			t.Fatalf("read %d records, want %d", len(out), want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// latestPerKey is what a consumer of the compacted topic ends up with.
func latestPerKey(recs []*kgo.Record) map[string]*kgo.Record {
	m := map[string]*kgo.Record{}
	for _, r := range recs {
		m[string(r.Key)] = r
	}
	return m
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

type cloudEvent struct {
	SpecVersion string `json:"specversion"`
	ID          string `json:"id"`
	Type        string `json:"type"`
	Subject     string `json:"subject"`
	Source      string `json:"source"`
	Data        struct {
		Metadata struct {
			UID        string `json:"uid"`
			Generation int64  `json:"generation"`
		} `json:"metadata"`
		Spec crmv1alpha1.CustomerSpec `json:"spec"`
	} `json:"data"`
}

func decode(t testing.TB, r *kgo.Record) cloudEvent {
	t.Helper()
	var ce cloudEvent
	if err := json.Unmarshal(r.Value, &ce); err != nil {
		t.Fatalf("record value is not a CloudEvent: %v: %s", err, r.Value)
	}
	return ce
}

func TestCreateUpdateDeleteReachTheTopic(t *testing.T) {
	cluster := newCluster(t)
	addrs := cluster.ListenAddrs()
	createCompactedTopic(t, cluster, 1)
	s := newSender(t, Config{Brokers: addrs, Topic: topic}, allowAll)

	ada1 := customer("ada", "uid-ada", 1, "ada@example.com")
	ada2 := customer("ada", "uid-ada", 2, "ada@new.example.com")
	bob := customer("bob", "uid-bob", 1, "bob@example.com")
	for _, ev := range []delivery.Event{upsert(ada1), upsert(bob), upsert(ada2), deleted(bob)} {
		mustDeliver(t, s, ev)
	}

	recs := readAll(t, addrs, 5)
	var adaRecs, bobRecs []*kgo.Record
	for _, r := range recs {
		switch string(r.Key) {
		case "uid-ada":
			adaRecs = append(adaRecs, r)
		case "uid-bob":
			bobRecs = append(bobRecs, r)
		default:
			t.Fatalf("record keyed %q, want a Customer's uid", r.Key)
		}
	}
	if len(adaRecs) != 2 || len(bobRecs) != 3 {
		t.Fatalf("got %d records for ada and %d for bob, want 2 and 3", len(adaRecs), len(bobRecs))
	}
	// One partition per key, in the order delivered.
	for _, rs := range [][]*kgo.Record{adaRecs, bobRecs} {
		for _, r := range rs[1:] {
			if r.Partition != rs[0].Partition || r.Offset <= rs[0].Offset {
				t.Fatalf("records of key %s are spread or out of order: partition %d offset %d after partition %d offset %d",
					r.Key, r.Partition, r.Offset, rs[0].Partition, rs[0].Offset)
			}
		}
	}
	if ce := decode(t, adaRecs[1]); ce.ID != "uid-ada.2" || ce.Data.Spec.Email != "ada@new.example.com" ||
		ce.Type != delivery.CloudEventsTypePrefix+delivery.TypeUpserted || ce.Subject != "ada" || ce.SpecVersion != "1.0" {
		t.Fatalf("ada's update: %+v", ce)
	}
	r := adaRecs[1]
	for k, want := range map[string]string{
		"ce_specversion": "1.0", "ce_id": "uid-ada.2", "ce_subject": "ada",
		"ce_type":      delivery.CloudEventsTypePrefix + delivery.TypeUpserted,
		"ce_source":    "/apis/" + crmv1alpha1.GroupVersion.String() + "/namespaces/tenant-a/customers",
		"ce_time":      eventTime.Format(time.RFC3339Nano),
		"content-type": delivery.ContentTypeCloudEvents,
	} {
		if got := header(r, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if ce := decode(t, bobRecs[1]); ce.Type != delivery.CloudEventsTypePrefix+delivery.TypeDeleted || ce.ID != "uid-bob.2" {
		t.Fatalf("bob's delete event: %+v", ce)
	}
	if header(bobRecs[1], "ce_type") != delivery.CloudEventsTypePrefix+delivery.TypeDeleted {
		t.Fatalf("bob's delete event has ce_type %q", header(bobRecs[1], "ce_type"))
	}
	if tomb := bobRecs[2]; tomb.Value != nil || len(tomb.Headers) != 0 {
		t.Fatalf("bob's last record is not a bare tombstone: value %q, headers %v", tomb.Value, tomb.Headers)
	}

	// Compaction leaves exactly the live Customers, at their latest generation.
	compact(t, cluster, addrs)
	live := latestPerKey(readAll(t, addrs, 2))
	delete(live, "sentinel")
	// Kafka removes a tombstone itself once delete.retention.ms has passed
	// since the cleaning that reached it; until then it stands for the key.
	if r := live["uid-bob"]; r != nil && r.Value == nil {
		delete(live, "uid-bob")
	}
	if len(live) != 1 || live["uid-ada"] == nil {
		t.Fatalf("after compaction the topic holds keys %v, want only uid-ada", keysOf(live))
	}
	if ce := decode(t, live["uid-ada"]); ce.Data.Metadata.Generation != 2 {
		t.Fatalf("after compaction ada is at generation %d, want 2", ce.Data.Metadata.Generation)
	}
}

func keysOf(m map[string]*kgo.Record) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A redelivery produces the same event again (same ce_id): Kafka has no
// de-duplication across produce calls. The compacted topic still ends with one
// record per key holding the latest generation, and consumers that apply an
// event only when its generation is newer than what they hold (or skip a ce_id
// they have seen) see no change at all.
func TestRedeliveryLeavesTheLatestGeneration(t *testing.T) {
	cluster := newCluster(t)
	addrs := cluster.ListenAddrs()
	createCompactedTopic(t, cluster, 1)
	s := newSender(t, Config{Brokers: addrs, Topic: topic}, allowAll)

	ada1 := customer("ada", "uid-ada", 1, "ada@example.com")
	ada2 := customer("ada", "uid-ada", 2, "ada@new.example.com")
	for _, ev := range []delivery.Event{upsert(ada1), upsert(ada2), upsert(ada2)} {
		mustDeliver(t, s, ev)
	}
	recs := readAll(t, addrs, 3)
	seen := map[string]int{}
	for _, r := range recs {
		seen[header(r, "ce_id")]++
	}
	if seen["uid-ada.2"] != 2 || seen["uid-ada.1"] != 1 {
		t.Fatalf("ce_ids on the topic: %v", seen)
	}
	compact(t, cluster, addrs)
	live := latestPerKey(readAll(t, addrs, 2))
	delete(live, "sentinel")
	if len(live) != 1 || decode(t, live["uid-ada"]).Data.Metadata.Generation != 2 {
		t.Fatalf("after compaction: %v", keysOf(live))
	}
	// A consumer's view: apply an event only if its generation is newer.
	applied := map[string]int64{}
	for _, r := range recs {
		ce := decode(t, r)
		if ce.Data.Metadata.Generation > applied[string(r.Key)] {
			applied[string(r.Key)] = ce.Data.Metadata.Generation
		}
	}
	if applied["uid-ada"] != 2 {
		t.Fatalf("a generation-comparing consumer holds %v", applied)
	}
}

// The cluster goes away and comes back on the same address with its data:
// deliveries fail meanwhile (the sink backs off), then succeed, and every
// acknowledged record is there.
func TestClusterDownThenBackCatchesUp(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	first, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(3, topic))
	if err != nil {
		t.Fatal(err)
	}
	addrs := first.ListenAddrs()
	s := newSender(t, Config{Brokers: addrs, Topic: topic, Timeout: 2 * time.Second}, allowAll)

	var acked []delivery.Event
	for i := range 5 {
		ev := upsert(customer("c"+strconv.Itoa(i), types.UID("uid-"+strconv.Itoa(i)), 1, "a@example.com"))
		mustDeliver(t, s, ev)
		acked = append(acked, ev)
	}
	first.Close()

	down := upsert(customer("late", "uid-late", 1, "late@example.com"))
	res := s.Deliver(context.Background(), down)
	if res.Err == nil {
		t.Fatal("a delivery to a stopped cluster succeeded")
	}
	if res.Refused {
		t.Fatalf("a stopped cluster refused the record instead of failing the sink: %v", res.Err)
	}
	t.Logf("while down: %v", res.Err)

	second, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Close)
	// The engine retries with backoff; here, until it goes through.
	deadline := time.Now().Add(30 * time.Second)
	for res := s.Deliver(context.Background(), down); res.Err != nil; res = s.Deliver(context.Background(), down) {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the cluster came back: %v", res.Err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	acked = append(acked, down)
	live := latestPerKey(readAll(t, addrs, len(acked)))
	for _, ev := range acked {
		if r := live[string(ev.Customer.UID)]; r == nil || header(r, "ce_id") != ev.ID {
			t.Errorf("acknowledged event %s is missing after the restart", ev.ID)
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestAddressPolicyRefusesTheBroker(t *testing.T) {
	cluster := newCluster(t, kfake.SeedTopics(1, topic))
	policy := delivery.AddressPolicy{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	s := newSender(t, Config{Brokers: cluster.ListenAddrs(), Topic: topic, Timeout: time.Second}, policy)
	res := s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
	var notAllowed *delivery.AddressNotAllowedError
	if !errors.As(res.Err, &notAllowed) {
		t.Fatalf("Err = %v, want an AddressNotAllowedError", res.Err)
	}
	if !strings.Contains(res.Err.Error(), "127.0.0.0/8") || res.Refused {
		t.Fatalf("Err = %v (refused %v), want the denied range named and the sink failed", res.Err, res.Refused)
	}
}

// A record the brokers will not take is this Customer's problem, not the
// sink's: Refused, so the engine backs off this Customer without pausing the
// sink.
func TestRecordTooLargeIsRefused(t *testing.T) {
	cluster := newCluster(t, kfake.SeedTopics(1, topic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "1200"}))
	s := newSender(t, Config{Brokers: cluster.ListenAddrs(), Topic: topic}, allowAll)
	// Random, so that compression cannot bring it under the limit.
	noise := make([]byte, 2000)
	_, _ = rand.Read(noise)
	big := customer("ada", "uid-ada", 1, hex.EncodeToString(noise)+"@example.com")
	res := s.Deliver(context.Background(), upsert(big))
	if res.Err == nil || !res.Refused {
		t.Fatalf("a record over message.max.bytes: Err %v, Refused %v; want refused", res.Err, res.Refused)
	}
	// The sink still works for others.
	mustDeliver(t, s, upsert(customer("bob", "uid-bob", 1, "bob@example.com")))
}

func TestSASLAndTLS(t *testing.T) {
	certPEM, serverTLS := selfSigned(t)
	for _, mech := range []string{SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			cluster := newCluster(t, kfake.SeedTopics(1, topic), kfake.EnableSASL(),
				kfake.Superuser(mech, "operator", "s3cret"), kfake.TLS(serverTLS))
			addrs := cluster.ListenAddrs()
			s := newSender(t, Config{Brokers: addrs, Topic: topic, SASL: mech, Username: "operator",
				Password: "s3cret", TLS: true, CA: certPEM, Timeout: 5 * time.Second}, allowAll)
			mustDeliver(t, s, upsert(customer("ada", "uid-ada", 1, "ada@example.com")))

			wrong := newSender(t, Config{Brokers: addrs, Topic: topic, SASL: mech, Username: "operator",
				Password: "wrong", TLS: true, CA: certPEM, Timeout: 2 * time.Second}, allowAll)
			res := wrong.Deliver(context.Background(), upsert(customer("bob", "uid-bob", 1, "bob@example.com")))
			if res.Err == nil || res.Refused {
				t.Fatalf("wrong password: Err %v, Refused %v", res.Err, res.Refused)
			}
			if strings.Contains(res.Err.Error(), "wrong") {
				t.Fatalf("the error repeats the password: %v", res.Err)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		cluster := newCluster(t, kfake.SeedTopics(1, topic), kfake.TLS(serverTLS))
		s := newSender(t, Config{Brokers: cluster.ListenAddrs(), Topic: topic, TLS: true, Timeout: time.Second}, allowAll)
		res := s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
		if res.Err == nil || !strings.Contains(res.Err.Error(), "TLS handshake") {
			t.Fatalf("Err = %v, want a failed TLS handshake", res.Err)
		}
	})
}

// selfSigned makes a certificate for 127.0.0.1: its CA's PEM, and the
// server's TLS configuration.
func selfSigned(t testing.TB) ([]byte, *tls.Config) {
	t.Helper()
	certs, err := testcert.NewLoopback("kfake")
	if err != nil {
		t.Fatal(err)
	}
	return certs.CAPEM, certs.TLS
}

// With several partitions, each Customer's records stay on one partition in
// the order delivered, whatever the interleaving with other Customers.
func TestRecordsOfOneCustomerKeepTheirOrder(t *testing.T) {
	cluster := newCluster(t, kfake.SeedTopics(3, topic))
	addrs := cluster.ListenAddrs()
	s := newSender(t, Config{Brokers: addrs, Topic: topic}, allowAll)
	const customers, generations = 12, 4
	for g := int64(1); g <= generations; g++ {
		for i := range customers {
			mustDeliver(t, s, upsert(customer("c"+strconv.Itoa(i), types.UID("uid-"+strconv.Itoa(i)), g, "c@example.com")))
		}
	}
	partitions := map[string]int32{}
	lastGen := map[string]int64{}
	used := map[int32]bool{}
	for _, r := range readAll(t, addrs, customers*generations) {
		k := string(r.Key)
		if p, ok := partitions[k]; ok && p != r.Partition {
			t.Fatalf("key %s on partitions %d and %d", k, p, r.Partition)
		}
		partitions[k] = r.Partition
		used[r.Partition] = true
		g := decode(t, r).Data.Metadata.Generation
		if g != lastGen[k]+1 {
			t.Fatalf("key %s: generation %d after %d", k, g, lastGen[k])
		}
		lastGen[k] = g
	}
	if len(used) < 2 {
		t.Fatalf("all keys hashed to one partition of three: %v", used)
	}
}
