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

// Command bench measures the operator from outside, as a platform team sizes it: it
// starts its own etcd and kube-apiserver from bin/k8s, the built manager binary as
// processes and a sink receiver, then measures ingest against raw client-go
// creates, the webhook process's CPU per event, propagation to a new sink against
// raw status writes, the capacity of the whole pipeline (stepped rates, POST-to-sink
// latency, each process's CPU per event, the knee against a raw ceiling), and the
// manager's RSS with 10k and 50k Customers cached. It prints a Markdown table and, with
// -json, one JSON object as its last line.
//
//	go run ./hack/bench -json
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers"
	"github.com/customer-operator/customer-operator/test/benchutil"
	"github.com/customer-operator/customer-operator/test/localcluster"
	"github.com/customer-operator/customer-operator/webhookserver"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/gettrx"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

const sinkKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var sourceKey = map[string][]byte{"secret": []byte("bench-gettrx-signing-key-0123456789")}

// Result is the JSON the bench prints last.
type Result struct {
	IngestEventsPerS     float64 `json:"ingest_events_per_s"`
	IngestRawCreatesPerS float64 `json:"ingest_raw_creates_per_s"`
	IngestRatio          float64 `json:"ingest_ratio"`
	WebhookCPUMsPerEvent float64 `json:"webhook_cpu_ms_per_event"`
	WebhookProcessCPUMs  float64 `json:"webhook_process_cpu_ms_per_event"`
	RawClientCPUMs       float64 `json:"raw_client_cpu_ms_per_create"`
	PropagationPerS      float64 `json:"propagation_customers_per_s"`
	RawStatusWritesPerS  float64 `json:"raw_status_writes_per_s"`
	PropagationRatio     float64 `json:"propagation_ratio"`
	LatencyP50Ms         float64 `json:"latency_p50_ms"`
	LatencyP99Ms         float64 `json:"latency_p99_ms"`
	LatencyEvents        int     `json:"latency_events"`
	RSSBytes10k          int64   `json:"rss_bytes_10k"`
	ObjectsBytes10k      int64   `json:"objects_bytes_10k"`
	RSSBytes50k          int64   `json:"rss_bytes_50k"`
	ObjectsBytes50k      int64   `json:"objects_bytes_50k"`
	EtcdBytesPerCustomer float64 `json:"etcd_bytes_per_customer"`
	// Capacity is the capacity phase's figures; nil when it did not run.
	Capacity  *Capacity `json:"capacity,omitempty"`
	Machine   Machine   `json:"machine"`
	DurationS float64   `json:"duration_s"`
}

// Machine is what the figures were measured on.
type Machine struct {
	Cores    int    `json:"cores"`
	CPUModel string `json:"cpu_model"`
	// A virtual machine's model name is often generic ("AMD EPYC"); the
	// family tells its generations apart, and runs on different ones do not
	// compare.
	CPUFamily string `json:"cpu_family,omitempty"`
}

type bench struct {
	ctx context.Context
	cp  *localcluster.ControlPlane
	k8s client.Client
	// watcher follows Customers while a phase waits for them.
	watcher client.WithWatch
	bin     string
	// workers is the manager's --max-concurrent-reconciles and the baseline's
	// concurrency.
	workers int
	// profileDir, when set, receives pprof profiles of the manager.
	profileDir string
	logf       func(string, ...any)
	scheme     *kruntime.Scheme
}

func main() {
	jsonOut := flag.Bool("json", false, "print the figures as one JSON object on the last line")
	binDir := flag.String("k8s-bin-dir", envOr("KUBEBUILDER_ASSETS", "bin/k8s"), "directory with etcd and kube-apiserver")
	ingestN := flag.Int("ingest-events", 600, "events per ingest round (3 rounds per side)")
	propN := flag.Int("propagation-customers", 2000, "Customers propagated to a new sink")
	capRates := flag.String("capacity-rates", "50,100,150,200,250,300", "the capacity phase's steps, events per second; after the first step not absorbed at or above -capacity-compare-rate it measures one more halfway from the step before, and stops")
	capStep := flag.Duration("capacity-step", 20*time.Second, "how long the capacity phase offers each rate")
	capCeiling := flag.Int("capacity-ceiling-pairs", 3000, "Customers the raw ceiling creates and writes the status of")
	capCompare := flag.Float64("capacity-compare-rate", 100, "the rate whose step is profiled, reported as latency_p50_ms and latency_p99_ms, and compared with raw pairs paced at the same rate")
	memSizes := flag.String("memory-sizes", "10000,50000", "Customer counts at which the manager's RSS is measured")
	memRounds := flag.Int("memory-rounds", 1, "fresh managers measured at each memory size (the median counts)")
	memCompare := flag.String("memory-compare", "", "manager flags of a second manager measured after each one at each memory size, for an A/B in one run, e.g. --startup-gc-percent=0")
	keep := flag.Bool("keep", false, "keep the state directory (logs) after the run")
	managerBin := flag.String("manager-bin", "", "run this manager binary instead of building one from the working tree, e.g. an older commit's for an A/B with the same bench")
	workers := flag.Int("workers", 8, "the manager's --max-concurrent-reconciles, and the propagation baseline's concurrency")
	only := flag.String("only", "ingest,propagation,capacity,memory", "the phases to run, comma-separated")
	profileDir := flag.String("profile-dir", "", "write CPU profiles of the manager and the API server under load, and the manager's heap profiles, here")
	flag.Parse()
	// envtest.InstallCRDs logs through controller-runtime; nothing here needs it.
	ctrllog.SetLogger(logr.Discard())

	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "bench-")
	check(err)
	if !*keep {
		defer func() { _ = os.RemoveAll(dir) }()
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%5.0fs] "+format+"\n", append([]any{time.Since(began).Seconds()}, args...)...)
	}
	logf("state and logs in %s", dir)

	b := &bench{ctx: ctx, logf: logf, scheme: kruntime.NewScheme(), profileDir: *profileDir, workers: *workers}
	utilruntime.Must(clientgoscheme.AddToScheme(b.scheme))
	utilruntime.Must(crmv1alpha1.AddToScheme(b.scheme))
	abs, err := filepath.Abs(*binDir)
	check(err)
	b.cp = &localcluster.ControlPlane{BinDir: abs, Dir: dir,
		// The defaults (400/200) throttle a 16-sender load before the CPU does.
		APIServerArgs: []string{"--max-requests-inflight=1000", "--max-mutating-requests-inflight=500"}}
	defer b.cp.Stop()
	built := make(chan error, 1)
	go func() {
		if *managerBin != "" {
			var err error
			b.bin, err = filepath.Abs(*managerBin)
			built <- err
			return
		}
		var err error
		b.bin, err = localcluster.BuildManager(ctx, ".", dir)
		built <- err
	}()
	check(b.cp.Start(ctx))
	check(b.cp.InstallCRDs("config/crd/bases"))
	b.k8s, err = client.New(b.cp.RESTConfig(), client.Options{Scheme: b.scheme})
	check(err)
	b.watcher, err = client.NewWithWatch(b.cp.RESTConfig(), client.Options{Scheme: b.scheme})
	check(err)
	check(<-built)
	logf("control plane at %s, manager built", b.cp.URL())

	var res Result
	res.Machine = machine()
	run := func(phase string) bool { return slices.Contains(strings.Split(*only, ","), phase) }
	if run("ingest") {
		b.ingest(&res, *ingestN)
	}
	if run("propagation") {
		b.propagation(&res, *propN)
	}
	if run("capacity") {
		rates, err := parseRates(*capRates)
		check(err)
		b.capacity(&res, capacityConfig{rates: rates, step: *capStep, ceilingPairs: *capCeiling, compareRate: *capCompare})
	}
	for _, s := range strings.Split(*memSizes, ",") {
		if !run("memory") {
			break
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		rss, objs := b.memory(n, *memRounds, strings.Fields(*memCompare))
		switch n {
		case 10000:
			res.RSSBytes10k, res.ObjectsBytes10k = rss, objs
		case 50000:
			res.RSSBytes50k, res.ObjectsBytes50k = rss, objs
		}
	}
	res.DurationS = math.Round(time.Since(began).Seconds())
	printTable(&res)
	if *jsonOut {
		out, err := json.Marshal(&res)
		check(err)
		fmt.Println(string(out))
	}
}

// namespace creates a namespace with a GETTRX source and, when sink, a sink at the
// receiver.
func (b *bench) namespace(ns string, sinkURL string) {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gettrx"}, Data: sourceKey},
		&crmv1alpha1.CustomerSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gettrx"},
			Spec: crmv1alpha1.CustomerSourceSpec{Provider: crmv1alpha1.ProviderGETTRX, SecretRef: crmv1alpha1.SecretReference{Name: "gettrx"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sink"}, StringData: map[string]string{"secret": sinkKey}},
	}
	if sinkURL != "" {
		objs = append(objs, b.sink(ns, sinkURL))
	}
	for _, o := range objs {
		check(b.k8s.Create(b.ctx, o))
	}
}

func (b *bench) sink(ns, url string) *crmv1alpha1.CustomerSink {
	return &crmv1alpha1.CustomerSink{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "receiver"},
		Spec: crmv1alpha1.CustomerSinkSpec{URL: url, Format: crmv1alpha1.FormatStandardWebhooks, SecretRef: &crmv1alpha1.SecretReference{Name: "sink"}}}
}

// managerOptions is where the bench chooses flags beyond localcluster.ManagerArgs.
func managerOptions(name, mode string) localcluster.ManagerOptions {
	return localcluster.ManagerOptions{Name: name, Mode: mode}
}

// warm sends until the webhook server acknowledges, so measuring starts on a
// server that knows the source.
func (b *bench) warm(s *localcluster.Sender, id string) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if r := s.Send(b.ctx, "evt_"+id, "cus_"+id); r.OK() {
			return
		} else if time.Now().After(deadline) {
			check(fmt.Errorf("the webhook server did not acknowledge within 2m: %w", r.Err))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// ingest: signed webhooks through a --mode=webhook manager against raw client-go
// creates of the same Customers, 16 senders each, alternating rounds.
func (b *bench) ingest(res *Result, perRound int) {
	const senders, rounds = 16, 3
	ns := "ingest"
	b.namespace(ns, "")
	m, err := b.cp.StartManager(b.ctx, b.bin, managerOptions("manager-webhook", "webhook"))
	check(err)
	defer m.Stop(10 * time.Second)
	s := &localcluster.Sender{Targets: []string{m.WebhookURL}, Namespace: ns, Source: "gettrx", Secret: sourceKey, RetryFor: time.Minute}
	b.warm(s, "warm-ingest")
	var src crmv1alpha1.CustomerSource
	check(b.k8s.Get(b.ctx, client.ObjectKey{Namespace: ns, Name: "gettrx"}, &src))

	self := os.Getpid()
	var hookRates, rawRates []float64
	var hookCPU, rawCPU time.Duration
	var hookLoad, rawLoad load
	profiled := b.profile(m, "cpu-ingest.pprof", "/debug/pprof/profile?seconds=30")
	for round := range rounds {
		objs := make([]*crmv1alpha1.Customer, perRound)
		for i := range objs {
			objs[i] = rawCustomer(ns, &src, fmt.Sprintf("raw%d-%05d", round, i))
		}
		cpu0, l0 := cpuOf(self), b.snapshot(m)
		d, err := benchutil.Parallel(perRound, senders, func(i int) error { return b.k8s.Create(b.ctx, objs[i]) })
		check(err)
		rawCPU += cpuOf(self) - cpu0
		rawLoad.add(l0, b.snapshot(m))
		rawRates = append(rawRates, float64(perRound)/d.Seconds())

		mcpu0, l0 := cpuOf(m.Pid()), b.snapshot(m)
		d, err = benchutil.Parallel(perRound, senders, func(i int) error {
			id := fmt.Sprintf("hook%d-%05d", round, i)
			if r := s.Send(b.ctx, "evt_"+id, "cus_"+id); !r.OK() {
				return fmt.Errorf("event %s: %w", id, r.Err)
			}
			return nil
		})
		check(err)
		hookCPU += cpuOf(m.Pid()) - mcpu0
		hookLoad.add(l0, b.snapshot(m))
		hookRates = append(hookRates, float64(perRound)/d.Seconds())
	}
	n := float64(rounds * perRound)
	<-profiled
	b.report("ingest, raw creates", load{}, rawLoad, n, "create")
	b.report("ingest, webhooks", load{}, hookLoad, n, "event")
	res.IngestRawCreatesPerS, res.IngestEventsPerS = round1(benchutil.Median(rawRates)), round1(benchutil.Median(hookRates))
	res.IngestRatio = round2(benchutil.Median(hookRates) / benchutil.Median(rawRates))
	res.WebhookProcessCPUMs = round3(float64(hookCPU.Microseconds()) / 1000 / n)
	res.RawClientCPUMs = round3(float64(rawCPU.Microseconds()) / 1000 / n)
	res.WebhookCPUMsPerEvent = round3(res.WebhookProcessCPUMs - res.RawClientCPUMs)
	b.logf("ingest: webhooks %v/s, raw creates %v/s; webhook process %.3f ms CPU/event, raw client %.3f ms/create",
		benchutil.Rounded(hookRates), benchutil.Rounded(rawRates), res.WebhookProcessCPUMs, res.RawClientCPUMs)
	// They stay, Customers like any other: the propagation phase's first manager
	// gives them their status.
}

// purge deletes these Customers now: they carry the controller's finalizer,
// which no controller would remove before the next phase's manager, whose
// measurement would then include finalizing them.
func (b *bench) purge(items []crmv1alpha1.Customer) {
	_, err := benchutil.Parallel(len(items), 16, func(i int) error {
		c := &items[i]
		if err := client.IgnoreNotFound(b.k8s.Delete(b.ctx, c)); err != nil {
			return err
		}
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		return client.IgnoreNotFound(b.k8s.Patch(b.ctx, c, client.RawPatch(types.MergePatchType, patch)))
	})
	check(err)
}

// rawCustomer is the Customer the webhook server writes for the event of id,
// labels, annotations and finalizer included.
func rawCustomer(ns string, src *crmv1alpha1.CustomerSource, id string) *crmv1alpha1.Customer {
	secret := sourceKey
	now := time.Now()
	body, header, err := gettrx.New().Prepare(localcluster.Event("evt_"+id, "cus_"+id, now), secret, now)
	check(err)
	parsed, err := registry.Lookup(crmv1alpha1.ProviderGETTRX).Parse(&providers.Request{Header: header, Body: body, Secret: secret, Now: now, Tolerance: time.Minute})
	check(err)
	ev := parsed.Events[0]
	return &crmv1alpha1.Customer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: webhookserver.CustomerName(ev.Customer.Provider, ev.Customer.ExternalID),
			Finalizers: []string{crmv1alpha1.CustomerFinalizer},
			Labels:     map[string]string{crmv1alpha1.LabelProvider: string(src.Spec.Provider), crmv1alpha1.LabelSource: src.Name},
			Annotations: map[string]string{
				crmv1alpha1.AnnotationLastEventID:       ev.ID,
				crmv1alpha1.AnnotationLastEventType:     ev.Type,
				crmv1alpha1.AnnotationLastEventTime:     ev.Time.UTC().Format(time.RFC3339Nano),
				crmv1alpha1.AnnotationLastEventReceived: now.UTC().Format(time.RFC3339Nano),
				webhookserver.AnnotationRecentEventIDs:  `["` + ev.ID + `"]`,
			}},
		Spec: ev.Customer,
	}
}

// propagation: n existing Customers reach a new sink, against raw status writes
// at the controller's worker count. The baseline writes the status the
// controller writes for them (same conditions, messages, last event and sink
// entry) to n other Customers with the same history: created in a namespace of
// their own, as the propagation's are, then given their NoSinks status by the
// manager. So both sides make the same change to objects of the same size, and
// the ratio measures the operator's own overhead: its reconciles, deliveries
// and watch. The ingest phase's Customers do not serve as the baseline: they
// were created by that run's webhook server, beside 1,600 others, and their
// writes cost the API server more than the propagation's, so the baseline
// would depend on whether and how ingest ran.
func (b *bench) propagation(res *Result, n int) {
	workers := b.workers
	ns, baseNS := "propagation", "propagation-baseline"
	var ingested crmv1alpha1.CustomerList
	check(b.k8s.List(b.ctx, &ingested, client.InNamespace("ingest")))
	for _, name := range []string{ns, baseNS} {
		b.namespace(name, "")
		var src crmv1alpha1.CustomerSource
		check(b.k8s.Get(b.ctx, client.ObjectKey{Namespace: name, Name: "gettrx"}, &src))
		dbBefore := etcdDBSize(b.cp.EtcdURL())
		_, err := benchutil.Parallel(n, 16, func(i int) error {
			return b.k8s.Create(b.ctx, rawCustomer(name, &src, fmt.Sprintf("%s-%05d", name, i)))
		})
		check(err)
		// Nothing else writes meanwhile: the database's growth is the Customers'.
		if dbAfter := etcdDBSize(b.cp.EtcdURL()); name == ns && dbAfter > dbBefore {
			res.EtcdBytesPerCustomer = math.Round(float64(dbAfter-dbBefore) / float64(n))
			b.logf("etcd: %d Customers grew the database in use by %d bytes (%.0f bytes each)", n, dbAfter-dbBefore, res.EtcdBytesPerCustomer)
		}
	}
	noSinks := func(c *crmv1alpha1.Customer) bool {
		s := meta.FindStatusCondition(c.Status.Conditions, crmv1alpha1.ConditionSynced)
		return s != nil && s.Reason == crmv1alpha1.ReasonNoSinks && s.ObservedGeneration == c.Generation
	}
	opts := managerOptions("manager-propagation", "controllers")
	opts.Extra = append(opts.Extra, fmt.Sprintf("--max-concurrent-reconciles=%d", workers))
	m, err := b.cp.StartManager(b.ctx, b.bin, opts)
	check(err)
	b.waitCustomers(ns, n, 5*time.Minute, noSinks)
	b.waitCustomers(baseNS, n, 5*time.Minute, noSinks)
	// And the ingest phase's Customers, so that no later manager writes theirs.
	b.waitCustomers("ingest", len(ingested.Items), 5*time.Minute, noSinks)
	m.Stop(10 * time.Second)

	var list crmv1alpha1.CustomerList
	check(b.k8s.List(b.ctx, &list, client.InNamespace(baseNS), client.Limit(int64(n))))
	rawBefore := b.snapshot()
	rawProfile := b.apiProfile("apiserver-cpu-propagation-baseline.pprof", 8*time.Second)
	d, err := benchutil.Parallel(len(list.Items), workers, func(i int) error {
		c := list.Items[i].DeepCopy()
		patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
		c.Status = syncedStatus(c, "receiver")
		// As the manager's field manager, so that the write updates its entry in
		// managedFields as the manager's own write does.
		return b.k8s.Status().Patch(b.ctx, c, patch, client.FieldOwner(managerFieldOwner))
	})
	check(err)
	rawRate := float64(len(list.Items)) / d.Seconds()
	b.report("propagation baseline", rawBefore, b.snapshot(), float64(len(list.Items)), "status write")
	b.objectSize("after the baseline", baseNS, list.Items[0].Name)
	<-rawProfile
	// Their status names a sink their namespace does not have: gone, they cannot
	// send any later manager back to correct them.
	b.purge(list.Items)

	opts.Name = "manager-propagation-2"
	m, err = b.cp.StartManager(b.ctx, b.bin, opts)
	check(err)
	defer m.Stop(10 * time.Second)
	// Started on a synced cluster, it reconciles every Customer once and finds
	// nothing to write; let that settle before the sink comes.
	b.waitStarted(m)
	b.quiet(m, time.Minute)
	check(b.k8s.List(b.ctx, &list, client.InNamespace(ns), client.Limit(1)))
	r := localcluster.NewReceiver(sinkKey)
	check(r.Listen("127.0.0.1:0"))
	defer r.Close()
	// Every Customer gets a status write once the sink exists: a watch from
	// now sees them all, without a list of every Customer.
	var one crmv1alpha1.CustomerList
	check(b.k8s.List(b.ctx, &one, client.InNamespace(ns), client.Limit(1)))
	before := b.snapshot(m)
	profiled := b.apiProfile("apiserver-cpu-propagation.pprof", 16*time.Second)
	mprofiled := b.profile(m, "cpu-propagation.pprof", "/debug/pprof/profile?seconds=16")
	start := time.Now()
	check(b.k8s.Create(b.ctx, b.sink(ns, "http://"+r.Addr()+"/")))
	b.watchCustomers(ns, one.ResourceVersion, n, 10*time.Minute, synced)
	took := time.Since(start)
	b.report("propagation", before, b.snapshot(m), float64(n), "Customer")
	b.objectSize("after propagation", ns, list.Items[0].Name)
	<-mprofiled
	<-profiled
	res.RawStatusWritesPerS = round1(rawRate)
	res.PropagationPerS = round1(float64(n) / took.Seconds())
	res.PropagationRatio = round2(res.PropagationPerS / rawRate)
	b.logf("propagation: %d Customers Synced at a new sink in %.1fs (%.0f/s, %d deliveries); raw status writes %.0f/s",
		n, took.Seconds(), res.PropagationPerS, r.Total(), rawRate)
}

// noSinksStatus is the status the Customer controller writes for a valid
// Customer that no sink selects, built with the controller's own functions.
func noSinksStatus(c *crmv1alpha1.Customer) crmv1alpha1.CustomerStatus {
	st := crmv1alpha1.CustomerStatus{ObservedGeneration: c.Generation, LastEvent: crmv1alpha1.LastEventFromAnnotations(c.Annotations)}
	controllers.SetCustomerValid(&st, c.Generation)
	controllers.SetCustomerSynced(&st, c.Generation, 0)
	return st
}

// managerFieldOwner is the field manager of the manager's writes: client-go's
// default, the binary's name.
const managerFieldOwner = "manager"

// syncedStatus is the status the Customer controller writes when a valid
// Customer with its NoSinks status has reached one sink: the same conditions,
// messages and sink entry, so that the baseline's write is the operator's
// write, byte for byte but for times.
func syncedStatus(c *crmv1alpha1.Customer, sink string) crmv1alpha1.CustomerStatus {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	st := *c.Status.DeepCopy()
	st.ObservedGeneration = c.Generation
	st.Sinks = []crmv1alpha1.SinkSyncStatus{{Name: sink, SyncedGeneration: c.Generation, SinkGeneration: 1, LastSyncTime: &now}}
	controllers.SetCustomerSynced(&st, c.Generation, len(st.Sinks))
	return st
}

func synced(c *crmv1alpha1.Customer) bool {
	s := meta.FindStatusCondition(c.Status.Conditions, crmv1alpha1.ConditionSynced)
	return s != nil && s.Status == metav1.ConditionTrue && s.ObservedGeneration == c.Generation &&
		len(c.Status.Sinks) == 1 && c.Status.Sinks[0].SyncedGeneration == c.Generation
}

// tally counts, by name, the Customers that satisfy a condition.
type tally struct {
	state map[string]bool
	got   int
}

func (t *tally) set(name string, v bool) {
	if t.state[name] {
		t.got--
	}
	if v {
		t.got++
	}
	t.state[name] = v
}

// follow applies a watch of ns from resourceVersion rv to t until n Customers
// satisfy ok (true), or the watch ends, e.g. with 410 Expired (false).
func (b *bench) follow(ctx context.Context, ns, rv string, t *tally, n int, ok func(*crmv1alpha1.Customer) bool) bool {
	w, err := b.watcher.Watch(ctx, &crmv1alpha1.CustomerList{}, client.InNamespace(ns), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
	check(err)
	defer w.Stop()
	for ev := range w.ResultChan() {
		c, isCustomer := ev.Object.(*crmv1alpha1.Customer)
		if !isCustomer {
			return false
		}
		t.set(c.Name, ev.Type != watch.Deleted && ok(c))
		if t.got >= n {
			return true
		}
	}
	return false
}

// waitCustomers waits until n Customers of ns satisfy ok. It lists once and
// then follows a watch: polling with a list of every Customer each second would
// cost the API server more than the work it measures (encoding thousands of
// objects a second), while a watch event's encoding is shared with the
// manager's own watch.
func (b *bench) waitCustomers(ns string, n int, limit time.Duration, ok func(*crmv1alpha1.Customer) bool) {
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	for {
		var list crmv1alpha1.CustomerList
		if err := b.k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			check(fmt.Errorf("listing Customers in %s: %w", ns, err))
		}
		t := &tally{state: map[string]bool{}}
		for i := range list.Items {
			t.set(list.Items[i].Name, ok(&list.Items[i]))
		}
		if t.got >= n || b.follow(ctx, ns, list.ResourceVersion, t, n, ok) {
			return
		}
		if ctx.Err() != nil {
			check(fmt.Errorf("only %d of %d Customers in %s reached the state within %s", t.got, n, ns, limit))
		}
	}
}

// watchCustomers waits until n Customers of ns satisfy ok, following a watch
// from resourceVersion rv; if the watch ends early, it falls back to
// waitCustomers.
func (b *bench) watchCustomers(ns, rv string, n int, limit time.Duration, ok func(*crmv1alpha1.Customer) bool) {
	ctx, cancel := context.WithTimeout(b.ctx, limit)
	defer cancel()
	if b.follow(ctx, ns, rv, &tally{state: map[string]bool{}}, n, ok) {
		return
	}
	b.waitCustomers(ns, n, limit, ok)
}

// deliveredMs is the time from x's first POST to the receiver's first verified
// delivery of its Customer, if it arrived.
func deliveredMs(x *localcluster.Result, r *localcluster.Receiver) (float64, bool) {
	rc, ok := r.Get(webhookserver.CustomerName(crmv1alpha1.ProviderGETTRX, x.CustomerID))
	if !ok {
		return 0, false
	}
	return float64(rc.First.Sub(x.Sent).Microseconds()) / 1000, true
}

// logWindows logs the latency of the events sent in each 10 s of the load, so
// that a slow start, a pause or a growing backlog shows where it happened.
func (b *bench) logWindows(results []*localcluster.Result, r *localcluster.Receiver) {
	if len(results) == 0 {
		return
	}
	const window = 10 * time.Second
	start := results[0].Sent
	var parts []string
	for from := start; ; from = from.Add(window) {
		var w []float64
		more := false
		for _, x := range results {
			if x.Sent.Before(from) {
				continue
			}
			if !x.Sent.Before(from.Add(window)) {
				more = true
				continue
			}
			if ms, ok := deliveredMs(x, r); ok && x.OK() {
				w = append(w, ms)
			}
		}
		slices.Sort(w)
		parts = append(parts, fmt.Sprintf("%.0f–%.0fs p50 %.0f p99 %.0f", from.Sub(start).Seconds(), from.Add(window).Sub(start).Seconds(), percentile(w, 0.5), percentile(w, 0.99)))
		if !more {
			break
		}
	}
	b.logf("latency by 10 s of the load (ms): %s", strings.Join(parts, "; "))
}

// populate creates Customers until the cluster holds n and gives each new one
// the first status the controller would write (a NoSinks status, as for any
// Customer the webhook server creates), so that a manager started over them
// finds nothing to write.
// memoryNamespace holds the memory phase's Customers, and nothing else's.
const memoryNamespace = "memory"

func (b *bench) populate(n int) {
	ns := memoryNamespace
	var nsObj corev1.Namespace
	if err := b.k8s.Get(b.ctx, client.ObjectKey{Name: ns}, &nsObj); err != nil {
		b.namespace(ns, "")
	}
	var src crmv1alpha1.CustomerSource
	check(b.k8s.Get(b.ctx, client.ObjectKey{Namespace: ns, Name: "gettrx"}, &src))
	var list crmv1alpha1.CustomerList
	check(b.k8s.List(b.ctx, &list, client.InNamespace(ns)))
	have := len(list.Items)
	// create returns the Customers as created: what their status write patches.
	create := func(from, count int) []*crmv1alpha1.Customer {
		out := make([]*crmv1alpha1.Customer, count)
		_, err := benchutil.Parallel(count, 16, func(i int) error {
			out[i] = rawCustomer(ns, &src, fmt.Sprintf("mem-%06d", from+i))
			return b.k8s.Create(b.ctx, out[i])
		})
		check(err)
		return out
	}
	if n > have {
		// Created first, with no manager running: the creates alone go fast, and the
		// status writes after them. A manager writing each status while the
		// creates went on cost the API server a sixth more per Customer, and kept
		// the bench past its ten minutes.
		began, beforeCreates := time.Now(), b.snapshot()
		fresh := create(have, n-have)
		created := time.Since(began)
		b.report(fmt.Sprintf("memory, %d creates", n-have), beforeCreates, b.snapshot(), float64(n-have), "create")
		// Their first status, as the controller writes it for a valid Customer
		// that no sink selects, written by the bench as the controller's field
		// manager: raw writes go faster than a manager's reconciles, and the
		// phase fits the bench's ten minutes. The measured manager must then find
		// nothing to write (checked below).
		before := b.snapshot()
		_, err := benchutil.Parallel(len(fresh), b.workers, func(i int) error {
			c := fresh[i]
			patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
			c.Status = noSinksStatus(c)
			return b.k8s.Status().Patch(b.ctx, c, patch, client.FieldOwner(managerFieldOwner))
		})
		check(err)
		b.report(fmt.Sprintf("memory, first status of %d Customers", n-have), before, b.snapshot(), float64(n-have), "status write")
		b.logf("memory: %d Customers created in %.0fs, their first status written by %.0fs", n-have, created.Seconds(), time.Since(began).Seconds())
	}
}

// measureMemory starts a fresh --mode=controllers manager (with extra flags)
// over the n settled Customers and reads its RSS once it has idled.
func (b *bench) measureMemory(n int, name string, extra []string) (rss, peak, objBytes int64) {
	started := time.Now()
	beforeStart := b.snapshot()
	opts := managerOptions(name, "controllers")
	// Only the memory namespace: the other phases' Customers (the capacity
	// phase's alone outnumber the smaller size) would otherwise be cached too,
	// and a size would not be the number of Customers measured.
	opts.Extra = append([]string{"--watch-namespaces=" + memoryNamespace}, extra...)
	m, err := b.cp.StartManager(b.ctx, b.bin, opts)
	check(err)
	defer m.Stop(10 * time.Second)
	b.waitStarted(m)
	// Settled, the Customers give it nothing to write: it lists them, reconciles
	// each once, and goes quiet.
	b.quiet(m, 2*time.Minute)
	afterStart := b.snapshot(m)
	if w := afterStart.requests["PATCH customers/status"] - beforeStart.requests["PATCH customers/status"]; w > float64(n)/100 {
		check(fmt.Errorf("%s rewrote %.0f statuses at its start: the bench's NoSinks status is not the controller's", name, w))
	}
	b.report(fmt.Sprintf("memory, %s start-up over %d Customers", name, n), beforeStart, afterStart, float64(n), "Customer")
	b.logf("memory: %s started over %d Customers, quiet after %.0fs", name, n, time.Since(started).Seconds())
	// Idle memory is what a platform team reads off an operator that has been
	// running a while, not the tail of its start-up.
	b.idle(m)

	var list crmv1alpha1.CustomerList
	check(b.k8s.List(b.ctx, &list, client.InNamespace(memoryNamespace)))
	for i := range list.Items {
		c := &list.Items[i]
		c.ManagedFields = nil
		data, err := json.Marshal(c)
		check(err)
		objBytes += int64(len(data))
	}
	cached := len(list.Items)
	list = crmv1alpha1.CustomerList{}
	// A heap profile with gc=1 runs a GC first; RSS then holds the live heap, not garbage.
	<-b.profile(m, name+".pprof", "/debug/pprof/heap?gc=1")
	time.Sleep(2 * time.Second)
	rss, err = m.RSS()
	check(err)
	peak, err = m.PeakRSS()
	check(err)
	anon, err1 := m.StatusBytes("RssAnon")
	file, err2 := m.StatusBytes("RssFile")
	check(errors.Join(err1, err2))
	// The heap profile in text form ends with the runtime's MemStats: what of the
	// RSS is heap, and how much of it free.
	<-b.profile(m, name+".txt", "/debug/pprof/heap?debug=1")
	b.logf("memory: %s, %d Customers (%d JSON bytes, %.0f each) cached: steady RSS %d MiB (%.2f× the objects; %d MiB anonymous, %d MiB file), peak RSS %d MiB (%.2f×)",
		name, cached, objBytes, float64(objBytes)/float64(cached), rss>>20, float64(rss)/float64(objBytes), anon>>20, file>>20, peak>>20, float64(peak)/float64(objBytes))
	return rss, peak, objBytes
}

// memory populates n Customers, then starts fresh --mode=controllers managers
// over the settled Customers and reads their RSS in the steady state a
// platform team sizes by: every Customer cached and reconciled, the manager
// quiet and idle, after a forced GC. That is the manager of every rollout and
// failover. The figure is set against the JSON bytes of the objects as then
// stored, status included and managed fields stripped (as main.go's cache
// transform strips them). The log also gives the manager's peak RSS: its
// start-up, the initial list of every Customer.
//
// It measures rounds managers as they ship, alternating with as many started
// with compare's flags when there are any, all over the same Customers; it
// returns the shipped manager's median and logs the comparison's.
func (b *bench) memory(n, rounds int, compare []string) (rss, objBytes int64) {
	b.populate(n)
	var shipped, compared, shippedPeak, comparedPeak []int64
	for i := range max(rounds, 1) {
		r, p, o := b.measureMemory(n, fmt.Sprintf("manager-memory-%d-%d", n, i), nil)
		shipped, shippedPeak, objBytes = append(shipped, r), append(shippedPeak, p), o
		if len(compare) > 0 {
			r, p, _ := b.measureMemory(n, fmt.Sprintf("manager-memory-%d-%d-compared", n, i), compare)
			compared, comparedPeak = append(compared, r), append(comparedPeak, p)
		}
	}
	rss = benchutil.Median(shipped)
	if len(compare) > 0 {
		b.logf("memory at %d Customers, medians of %d alternating managers: steady RSS %d MiB (%.2f×) against %d MiB (%.2f×) with %v, ratio %.2f; peak %d MiB against %d MiB, ratio %.2f",
			n, len(shipped), rss>>20, float64(rss)/float64(objBytes), benchutil.Median(compared)>>20, float64(benchutil.Median(compared))/float64(objBytes), compare,
			float64(rss)/float64(benchutil.Median(compared)), benchutil.Median(shippedPeak)>>20, benchutil.Median(comparedPeak)>>20, float64(benchutil.Median(shippedPeak))/float64(benchutil.Median(comparedPeak)))
	}
	return rss, objBytes
}

// idleSettle is how long the memory phase lets the quiet manager idle before it
// reads the RSS, at most.
const idleSettle = 20 * time.Second

// idle lets the quiet manager idle until its heap releaser has given the
// start-up's free heap back (RSS a tenth below its highest since it went
// quiet; then two seconds more), or for idleSettle. The releaser checks
// every 10 s, so a fixed wait would mostly be spent after the release.
func (b *bench) idle(m *localcluster.Manager) {
	began := time.Now()
	var highest int64
	for time.Since(began) < idleSettle {
		rss, err := m.RSS()
		check(err)
		highest = max(highest, rss)
		if rss < highest-highest/10 {
			time.Sleep(2 * time.Second)
			b.logf("memory: %s gave back %d MiB after %.0fs idle", m.Name, (highest-rss)>>20, time.Since(began).Seconds())
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.logf("memory: %s idled %s without giving back a tenth of its RSS", m.Name, idleSettle)
}

// quiet waits until the manager's CPU stays below 2% of a core for three
// seconds running, or for limit at most: then the reconciles and the watch
// events of their status writes are done.
func (b *bench) quiet(m *localcluster.Manager, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, calm := cpuOf(m.Pid()), 0
	for calm < 3 {
		if time.Now().After(deadline) {
			b.logf("%s still busy after %s; measuring anyway", m.Name, limit)
			return
		}
		time.Sleep(time.Second)
		now := cpuOf(m.Pid())
		if now-last < 20*time.Millisecond {
			calm++
		} else {
			calm = 0
		}
		last = now
	}
}

// waitStarted waits until m's Customer controller started its workers, which
// controller-runtime logs once the caches synced.
func (b *bench) waitStarted(m *localcluster.Manager) {
	deadline := time.Now().Add(5 * time.Minute)
	for !m.LogContains("Starting workers", `"controller":"customer"`) {
		if time.Now().After(deadline) {
			check(fmt.Errorf("%s did not sync its cache within 5m:\n%s", m.Name, m.Tail(20)))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// profile fetches a pprof endpoint of m in the background into the profile
// directory (or discards it without one); the channel closes when it is done.
func (b *bench) profile(m *localcluster.Manager, file, path string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + m.PprofAddr + path)
		if err != nil {
			b.logf("profile %s: %v", path, err)
			return
		}
		defer func() { _ = resp.Body.Close() }()
		w := io.Discard
		if b.profileDir != "" {
			f, err := os.Create(filepath.Join(b.profileDir, file))
			if err != nil {
				b.logf("profile %s: %v", file, err)
				return
			}
			defer func() { _ = f.Close() }()
			w = f
		}
		if _, err := io.Copy(w, resp.Body); err != nil {
			b.logf("profile %s: %v", path, err)
		}
	}()
	return done
}

// etcdDBSize reads etcd_mvcc_db_total_size_in_use_in_bytes from etcd's /metrics.
func etcdDBSize(etcdURL string) int64 {
	resp, err := http.Get(etcdURL + "/metrics")
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_mvcc_db_total_size_in_use_in_bytes "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f)
		}
	}
	return 0
}

func printTable(r *Result) {
	mib := func(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
	ratio := func(a, b int64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f×", float64(a)/float64(b))
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	model := r.Machine.CPUModel
	if r.Machine.CPUFamily != "" {
		model += " (CPU family " + r.Machine.CPUFamily + ")"
	}
	fmt.Printf("\nMachine: %d cores, %s. Bench took %.0f s.\n\n", r.Machine.Cores, model, r.DurationS)
	fmt.Println("| figure | measured | baseline (same run) | target | |")
	fmt.Println("|---|---|---|---|---|")
	// Only the phases that ran.
	if r.IngestEventsPerS > 0 {
		fmt.Printf("| ingest, 16 senders | %.0f events/s | %.0f raw creates/s | | |\n", r.IngestEventsPerS, r.IngestRawCreatesPerS)
		fmt.Printf("| `ingest_ratio` | %.2f | | ≥ 0.9 | %s |\n", r.IngestRatio, verdict(r.IngestRatio >= 0.9))
		fmt.Printf("| `webhook_cpu_ms_per_event` | %.3f ms | webhook process %.3f ms − raw client %.3f ms | ≤ 0.5 ms | %s |\n",
			r.WebhookCPUMsPerEvent, r.WebhookProcessCPUMs, r.RawClientCPUMs, verdict(r.WebhookCPUMsPerEvent <= 0.5))
	}
	if r.PropagationPerS > 0 {
		fmt.Printf("| propagation to a new sink | %.0f Customers/s | %.0f raw status writes/s | | |\n", r.PropagationPerS, r.RawStatusWritesPerS)
		fmt.Printf("| `propagation_ratio` | %.2f | | ≥ 0.8 | %s |\n", r.PropagationRatio, verdict(r.PropagationRatio >= 0.8))
		fmt.Printf("| etcd database in use per Customer | %.0f bytes | | | |\n", r.EtcdBytesPerCustomer)
	}
	if c := r.Capacity; c != nil {
		fmt.Printf("| `latency_p50_ms` (POST → sink, %d events at %.0f/s) | %.0f ms | | | |\n", r.LatencyEvents, c.CompareRate, r.LatencyP50Ms)
		fmt.Printf("| `latency_p99_ms` | %.0f ms | | ≤ 250 ms | %s |\n", r.LatencyP99Ms, verdict(r.LatencyP99Ms <= 250))
		fmt.Printf("| `capacity.knee_events_per_s` (POST → sink p99 < 1 s) | %.0f events/s | raw ceiling %.0f pairs/s | | |\n", c.KneeRate, c.CeilingPairsPerS)
		fmt.Printf("| `capacity.knee_ratio` | %.2f | | ≥ 0.6 | %s |\n", c.KneeRatio, verdict(c.KneeRatio >= 0.6))
		fmt.Printf("| `capacity.operator_cpu_ms_per_event` at %.0f/s | %.3f ms | | ≤ 1.0 ms | %s |\n", c.CompareRate, c.OperatorCPUMs, verdict(c.OperatorCPUMs <= 1.0))
		fmt.Printf("| `capacity.operator_cpu_ratio_to_raw_client` | %.2f | a plain client's own CPU for a raw pair, %.3f ms at %.0f/s | | |\n", c.OperatorRawClientRatio, c.RawAtRateCPU.LoadGenerator, c.CompareRate)
		fmt.Printf("| `capacity.apiserver_cpu_ratio_at_rate` | %.2f | raw pair %.3f ms at %.0f/s | ≤ 1.1 | %s |\n", c.APIServerRatio, c.RawAtRateCPU.APIServer, c.CompareRate, verdict(c.APIServerRatio <= 1.1))
		for _, st := range c.Steps {
			fmt.Printf("| step %.0f/s: p50 / p99 | %.0f / %.0f ms | CPU per event: manager %.2f, API server %.2f, etcd %.2f, load generator %.2f ms | | %s |\n",
				st.Rate, st.P50Ms, st.P99Ms, st.CPU.Manager, st.CPU.APIServer, st.CPU.Etcd, st.CPU.LoadGenerator, map[bool]string{true: "absorbed", false: "not absorbed"}[st.Absorbed])
		}
	}
	if r.RSSBytes10k > 0 {
		fmt.Printf("| RSS, 10k Customers cached | %s | %s of objects (%s) | | |\n", mib(r.RSSBytes10k), mib(r.ObjectsBytes10k), ratio(r.RSSBytes10k, r.ObjectsBytes10k))
	}
	if r.RSSBytes50k > 0 {
		fmt.Printf("| RSS, 50k Customers cached | %s | %s of objects (%s) | ≤ 2× | %s |\n", mib(r.RSSBytes50k), mib(r.ObjectsBytes50k), ratio(r.RSSBytes50k, r.ObjectsBytes50k),
			verdict(r.ObjectsBytes50k > 0 && r.RSSBytes50k <= 2*r.ObjectsBytes50k))
	}
	fmt.Println()
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), CPUModel: "unknown"}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		// The first processor's fields; the blank line ends them.
		first, _, _ := strings.Cut(string(data), "\n\n")
		for line := range strings.SplitSeq(first, "\n") {
			k, v, ok := strings.Cut(line, ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "model name":
				m.CPUModel = strings.TrimSpace(v)
			case k == "cpu family":
				m.CPUFamily = strings.TrimSpace(v)
			}
		}
	}
	return m
}

func cpuOf(pid int) time.Duration {
	d, err := localcluster.CPUTime(pid)
	check(err)
	return d
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return sorted[min(len(sorted)-1, int(math.Ceil(q*float64(len(sorted))))-1)]
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round2(x float64) float64 { return math.Round(x*100) / 100 }
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func check(err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		// Deferred stops do not run after os.Exit; the children die with this
		// process (Pdeathsig).
		os.Exit(1)
	}
}

func (b *bench) objectSize(when, ns, name string) {
	var c crmv1alpha1.Customer
	check(b.k8s.Get(b.ctx, client.ObjectKey{Namespace: ns, Name: name}, &c))
	all, _ := json.Marshal(&c)
	mf, _ := json.Marshal(c.ManagedFields)
	st, _ := json.Marshal(c.Status)
	b.logf("a Customer %s: %d JSON bytes, %d of them managed fields (%d entries), %d status", when, len(all), len(mf), len(c.ManagedFields), len(st))
	if os.Getenv("BENCH_DUMP") != "" {
		b.logf("%s", all)
	}
}
