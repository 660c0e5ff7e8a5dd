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

package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers/delivery"
)

const (
	stream = "CUSTOMERS"
	bucket = "customers"
)

// allowAll lets the tests reach the embedded server on loopback, which the
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

func upsert(c *crmv1alpha1.Customer) delivery.Event {
	return delivery.NewEvent(c, false, time.Now())
}

func deleted(c *crmv1alpha1.Customer) delivery.Event {
	c = c.DeepCopy()
	c.Generation++
	return delivery.NewEvent(c, true, time.Now())
}

// startServer runs nats-server with JetStream in the test process, on
// loopback; port 0 picks a free one. The store survives a restart in dir.
func startServer(t testing.TB, port int, dir string, mod func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true}
	if port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if mod != nil {
		mod(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// setUp makes the stream (and the KV bucket) the sink expects; the operator
// does not own them, as a team would not let it choose their retention.
func setUp(t testing.TB, url string, natsOpts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{"customers.>"}, Duplicates: 2 * time.Minute, MaxMsgSize: 4096,
	}); err != nil {
		t.Fatalf("creating the stream: %v", err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 8}); err != nil {
		t.Fatalf("creating the KV bucket: %v", err)
	}
	return js
}

func newSender(t testing.TB, cfg Config, policy delivery.AddressPolicy) *Sender {
	t.Helper()
	if cfg.Stream == "" {
		cfg.Stream = stream
	}
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

type cloudEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Data    struct {
		Metadata struct {
			UID        string `json:"uid"`
			Generation int64  `json:"generation"`
		} `json:"metadata"`
		Spec crmv1alpha1.CustomerSpec `json:"spec"`
	} `json:"data"`
}

type streamed struct {
	subject, msgID, contentType string
	ce                          cloudEvent
}

// streamContents reads every message of the stream, in order.
func streamContents(t testing.TB, js jetstream.JetStream) []streamed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []streamed
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		var ce cloudEvent
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			t.Fatalf("message %d is not a CloudEvent: %v", seq, err)
		}
		out = append(out, streamed{subject: m.Subject, msgID: m.Header.Get(jetstream.MsgIDHeader),
			contentType: m.Header.Get("Content-Type"), ce: ce})
	}
	return out
}

// bucketContents maps each key of the KV bucket to the generation it holds.
func bucketContents(t testing.TB, js jetstream.JetStream) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var ce cloudEvent
		if err := json.Unmarshal(e.Value(), &ce); err != nil {
			t.Fatal(err)
		}
		out[k] = ce.Data.Metadata.Generation
	}
	return out
}

func TestCreateUpdateDeleteReachTheStream(t *testing.T) {
	srv := startServer(t, 0, t.TempDir(), nil)
	js := setUp(t, srv.ClientURL())
	s := newSender(t, Config{URL: srv.ClientURL(), KVBucket: bucket}, allowAll)

	ada1 := customer("ada", "uid-ada", 1, "ada@example.com")
	ada2 := customer("ada", "uid-ada", 2, "ada@new.example.com")
	bob := customer("bob", "uid-bob", 1, "bob@example.com")
	for _, ev := range []delivery.Event{upsert(ada1), upsert(bob), upsert(ada2), deleted(bob)} {
		mustDeliver(t, s, ev)
	}

	got := streamContents(t, js)
	want := []struct{ subject, id, typ string }{
		{"customers.tenant-a.ada", "uid-ada.1", delivery.TypeUpserted},
		{"customers.tenant-a.bob", "uid-bob.1", delivery.TypeUpserted},
		{"customers.tenant-a.ada", "uid-ada.2", delivery.TypeUpserted},
		{"customers.tenant-a.bob", "uid-bob.2", delivery.TypeDeleted},
	}
	if len(got) != len(want) {
		t.Fatalf("the stream holds %d messages, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.subject != w.subject || g.msgID != w.id || g.ce.ID != w.id ||
			g.ce.Type != delivery.CloudEventsTypePrefix+w.typ || g.contentType != delivery.ContentTypeCloudEvents {
			t.Errorf("message %d: %+v, want %+v", i, g, w)
		}
	}
	if got[2].ce.Data.Spec.Email != "ada@new.example.com" {
		t.Errorf("ada's update carries %q", got[2].ce.Data.Spec.Email)
	}
	if kv := bucketContents(t, js); len(kv) != 1 || kv["tenant-a.ada"] != 2 {
		t.Fatalf("KV bucket holds %v, want only tenant-a.ada at generation 2", kv)
	}
}

// A redelivery has the same Nats-Msg-Id, and JetStream drops it; a replayed
// older generation leaves the KV bucket at the newer one.
func TestRedeliveryAndReplayChangeNothing(t *testing.T) {
	srv := startServer(t, 0, t.TempDir(), nil)
	js := setUp(t, srv.ClientURL())
	s := newSender(t, Config{URL: srv.ClientURL(), KVBucket: bucket}, allowAll)

	ada1 := upsert(customer("ada", "uid-ada", 1, "ada@example.com"))
	ada2 := upsert(customer("ada", "uid-ada", 2, "ada@new.example.com"))
	mustDeliver(t, s, ada1)
	mustDeliver(t, s, ada2)
	before := streamContents(t, js)
	kvBefore := bucketContents(t, js)

	mustDeliver(t, s, ada2) // a retry
	mustDeliver(t, s, ada1) // a replay of an older generation, still within the duplicate window
	if after := streamContents(t, js); len(after) != len(before) {
		t.Fatalf("the stream went from %d to %d messages", len(before), len(after))
	}
	if kv := bucketContents(t, js); kv["tenant-a.ada"] != kvBefore["tenant-a.ada"] || kv["tenant-a.ada"] != 2 {
		t.Fatalf("KV bucket went from %v to %v", kvBefore, kv)
	}

	// A late delete of an earlier Customer of the same name leaves the new one.
	old := customer("ada", "uid-old-ada", 5, "old@example.com")
	mustDeliver(t, s, deleted(old))
	if kv := bucketContents(t, js); kv["tenant-a.ada"] != 2 {
		t.Fatalf("a delete of another uid removed the key: %v", kv)
	}

	// Deleted, then a new Customer of the same name: the key is its.
	mustDeliver(t, s, deleted(customer("ada", "uid-ada", 2, "")))
	if kv := bucketContents(t, js); len(kv) != 0 {
		t.Fatalf("after the delete the KV bucket holds %v", kv)
	}
	mustDeliver(t, s, upsert(customer("ada", "uid-new-ada", 1, "ada@example.org")))
	if kv := bucketContents(t, js); kv["tenant-a.ada"] != 1 {
		t.Fatalf("the new Customer of the name is not in the KV bucket: %v", kv)
	}
}

// The server goes away and comes back with its store: deliveries fail
// meanwhile, then succeed, and every acknowledged message is there.
func TestServerDownThenBackCatchesUp(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, 0, dir, nil)
	url := first.ClientURL()
	setUp(t, url)
	s := newSender(t, Config{URL: url, KVBucket: bucket, Timeout: 2 * time.Second}, allowAll)

	var acked []delivery.Event
	for i := range 5 {
		ev := upsert(customer("c"+strconv.Itoa(i), types.UID("uid-"+strconv.Itoa(i)), 1, "c@example.com"))
		mustDeliver(t, s, ev)
		acked = append(acked, ev)
	}
	first.Shutdown()
	first.WaitForShutdown()

	late := upsert(customer("late", "uid-late", 1, "late@example.com"))
	res := s.Deliver(context.Background(), late)
	if res.Err == nil || res.Refused {
		t.Fatalf("a delivery to a stopped server: Err %v, Refused %v", res.Err, res.Refused)
	}
	t.Logf("while down: %v", res.Err)

	portNum, _ := strconv.Atoi(url[strings.LastIndex(url, ":")+1:])
	second := startServer(t, portNum, dir, nil)
	deadline := time.Now().Add(30 * time.Second)
	for res := s.Deliver(context.Background(), late); res.Err != nil; res = s.Deliver(context.Background(), late) {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after the server came back: %v", res.Err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	acked = append(acked, late)
	js := setUp(t, second.ClientURL())
	ids := map[string]bool{}
	for _, m := range streamContents(t, js) {
		ids[m.msgID] = true
	}
	kv := bucketContents(t, js)
	for _, ev := range acked {
		if !ids[ev.ID] {
			t.Errorf("acknowledged message %s is missing after the restart", ev.ID)
		}
		if kv["tenant-a."+ev.Customer.Name] != 1 {
			t.Errorf("KV key of %s is missing after the restart", ev.Customer.Name)
		}
	}
}

func TestAddressPolicyRefusesTheServer(t *testing.T) {
	srv := startServer(t, 0, t.TempDir(), nil)
	policy := delivery.AddressPolicy{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	s := newSender(t, Config{URL: srv.ClientURL(), Timeout: time.Second}, policy)
	res := s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
	var notAllowed *delivery.AddressNotAllowedError
	if !errors.As(res.Err, &notAllowed) || res.Refused {
		t.Fatalf("Err = %v (refused %v), want an AddressNotAllowedError failing the sink", res.Err, res.Refused)
	}
	if !strings.Contains(res.Err.Error(), "127.0.0.0/8") {
		t.Fatalf("Err = %v, want the denied range named", res.Err)
	}
}

func TestMessageTooLargeIsRefused(t *testing.T) {
	srv := startServer(t, 0, t.TempDir(), nil)
	setUp(t, srv.ClientURL())
	s := newSender(t, Config{URL: srv.ClientURL()}, allowAll)
	noise := make([]byte, 4096)
	_, _ = rand.Read(noise)
	res := s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, hex.EncodeToString(noise)+"@example.com")))
	if res.Err == nil || !res.Refused {
		t.Fatalf("a message over the stream's max_msg_size: Err %v, Refused %v; want refused", res.Err, res.Refused)
	}
	mustDeliver(t, s, upsert(customer("bob", "uid-bob", 1, "bob@example.com")))
}

func TestMissingStreamFailsTheSink(t *testing.T) {
	srv := startServer(t, 0, t.TempDir(), nil)
	s := newSender(t, Config{URL: srv.ClientURL(), Timeout: 2 * time.Second}, allowAll)
	res := s.Deliver(context.Background(), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
	if res.Err == nil || res.Refused || !strings.Contains(res.Err.Error(), stream) {
		t.Fatalf("Err = %v (refused %v), want the missing stream named", res.Err, res.Refused)
	}
}

func TestCredentials(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	cases := []struct {
		name   string
		server func(*server.Options)
		admin  []nats.Option
		good   Config
		bad    Config
	}{{
		name:   "user and password",
		server: func(o *server.Options) { o.Username, o.Password = "operator", "s3cret" },
		admin:  []nats.Option{nats.UserInfo("operator", "s3cret")},
		good:   Config{User: "operator", Password: "s3cret"},
		bad:    Config{User: "operator", Password: "wrong"},
	}, {
		name:   "token",
		server: func(o *server.Options) { o.Authorization = "t0ken" },
		admin:  []nats.Option{nats.Token("t0ken")},
		good:   Config{Token: "t0ken"},
		bad:    Config{Token: "wrong"},
	}, {
		name:   "nkey",
		server: func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
		admin:  []nats.Option{nats.Nkey(pub, kp.Sign)},
		good:   Config{NKeySeed: seed},
		bad:    Config{},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, 0, t.TempDir(), tc.server)
			setUp(t, srv.ClientURL(), tc.admin...)
			good, bad := tc.good, tc.bad
			good.URL, bad.URL = srv.ClientURL(), srv.ClientURL()
			bad.Timeout = time.Second
			mustDeliver(t, newSender(t, good, allowAll), upsert(customer("ada", "uid-ada", 1, "ada@example.com")))
			res := newSender(t, bad, allowAll).Deliver(context.Background(), upsert(customer("bob", "uid-bob", 1, "bob@example.com")))
			if res.Err == nil || strings.Contains(res.Err.Error(), "wrong") {
				t.Fatalf("wrong credentials: Err %v", res.Err)
			}
		})
	}
}

// One connection per sink, whatever the number of concurrent deliveries.
func TestOneConnectionPerSink(t *testing.T) {
	srv := startServer(t, 0, t.TempDir(), nil)
	setUp(t, srv.ClientURL())
	s := newSender(t, Config{URL: srv.ClientURL()}, allowAll)
	errs := make(chan error, 32)
	for i := range 32 {
		go func() {
			res := s.Deliver(context.Background(), upsert(customer(fmt.Sprintf("c%d", i), types.UID(fmt.Sprintf("uid-%d", i)), 1, "c@example.com")))
			errs <- res.Err
		}()
	}
	for range 32 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// setUp's connection and the sink's.
	if n := srv.NumClients(); n != 2 {
		t.Fatalf("the server has %d clients, want 2", n)
	}
}
