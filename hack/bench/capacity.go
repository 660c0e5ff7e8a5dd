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

package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/test/benchutil"
	"github.com/customer-operator/customer-operator/test/localcluster"
	"github.com/customer-operator/customer-operator/webhookserver"
)

// kneeP99 is the POST → sink p99 a rate must stay under to count as absorbed.
const kneeP99 = time.Second

// ceilingWriters is the raw ceiling's concurrency: the ingest phase's senders.
const ceilingWriters = 16

// capacityConfig chooses the capacity phase's load.
type capacityConfig struct {
	// rates are the pipeline's steps, in events per second, lowest first.
	rates []float64
	// step is how long each rate is offered.
	step time.Duration
	// ceilingPairs is how many Customers the raw ceiling creates.
	ceilingPairs int
	// compareRate is the rate at which raw pairs are paced for the API
	// server's comparison, and whose step is profiled and reported as
	// latency_p50_ms and latency_p99_ms.
	compareRate float64
}

// ProcessCPU is each process's CPU per event (or per raw pair), in ms.
type ProcessCPU struct {
	Manager       float64 `json:"manager,omitempty"`
	APIServer     float64 `json:"kube_apiserver"`
	Etcd          float64 `json:"etcd"`
	LoadGenerator float64 `json:"load_generator"`
}

// CapacityStep is one rate of the pipeline's load.
type CapacityStep struct {
	Rate float64 `json:"rate"`
	// Events were sent; Delivered reached the sink.
	Events    int `json:"events"`
	Delivered int `json:"delivered"`
	// P50Ms, P99Ms and MaxMs are POST → sink over every event sent; one
	// never acknowledged or never delivered counts as infinitely late (and
	// is then reported as -1).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// CatchUpS is how long after the load's last send the last delivery came.
	CatchUpS float64    `json:"catch_up_s"`
	CPU      ProcessCPU `json:"cpu_ms_per_event"`
	Absorbed bool       `json:"absorbed"`
}

// Capacity is what a platform team sizes by: how many new customers a
// control plane absorbs through the operator, against what it absorbs from a
// plain client, and what each process spends per customer.
type Capacity struct {
	// CeilingPairsPerS is the raw ceiling: new Customers per second from a
	// plain client, 16 writers, each a create and the controller's own
	// status write.
	CeilingPairsPerS float64 `json:"ceiling_pairs_per_s"`
	// CeilingRuns are the ceiling's two measurements, before the manager
	// starts and after it stopped; CeilingPairsPerS is their median.
	CeilingRuns []float64  `json:"ceiling_runs_pairs_per_s"`
	CeilingCPU  ProcessCPU `json:"ceiling_cpu_ms_per_pair"`
	// RawAtRateCPU is a raw pair's CPU paced at CompareRate, the regime of
	// the pipeline's step at that rate.
	CompareRate  float64    `json:"compare_rate"`
	RawAtRateCPU ProcessCPU `json:"raw_at_rate_cpu_ms_per_pair"`
	// APIServerRatio is the API server's CPU per event in the step at
	// CompareRate against a raw pair's at the same rate.
	APIServerRatio float64 `json:"apiserver_cpu_ratio_at_rate"`
	// OperatorCPUMs is the manager's CPU per event at CompareRate.
	OperatorCPUMs float64 `json:"operator_cpu_ms_per_event"`
	// OperatorRawClientRatio is OperatorCPUMs against the plain client's own
	// CPU for a raw pair at CompareRate: what the operator's webhook serving,
	// watch, reconciles and delivery cost against what a client spends on the
	// create and status write alone.
	OperatorRawClientRatio float64        `json:"operator_cpu_ratio_to_raw_client"`
	Steps                  []CapacityStep `json:"steps"`
	// KneeRate is the highest rate whose step kept POST → sink p99 under a
	// second (0 when none did); KneeRatio is its ratio to the raw ceiling.
	KneeRate  float64 `json:"knee_events_per_s"`
	KneeRatio float64 `json:"knee_ratio"`
}

// capacity measures the raw ceiling and a raw pair's cost at the compare
// rate, with no manager running, then steps a fresh --mode=all manager's rate
// from the lowest up, until a step is not absorbed.
func (b *bench) capacity(res *Result, cfg capacityConfig) {
	r := localcluster.NewReceiver(sinkKey)
	check(r.Listen("127.0.0.1:0"))
	defer r.Close()
	sinkURL := "http://" + r.Addr() + "/"
	capa := &Capacity{CompareRate: cfg.compareRate}
	res.Capacity = capa

	// The raw Customers' namespace has the sink their status names, so that
	// the manager started next finds them in sync and writes nothing.
	rawNS := "capacity-raw"
	b.namespace(rawNS, sinkURL)
	var src crmv1alpha1.CustomerSource
	check(b.k8s.Get(b.ctx, client.ObjectKey{Namespace: rawNS, Name: "gettrx"}, &src))
	objs := func(prefix string, n int) []*crmv1alpha1.Customer {
		out := make([]*crmv1alpha1.Customer, n)
		for i := range out {
			out[i] = rawCustomer(rawNS, &src, fmt.Sprintf("%s-%05d", prefix, i))
		}
		return out
	}

	// ceiling measures the raw ceiling once, and returns its CPU per pair.
	ceiling := func(prefix string) ProcessCPU {
		pairs := objs(prefix, cfg.ceilingPairs)
		before := b.snapshot()
		d, err := benchutil.Parallel(len(pairs), ceilingWriters, func(i int) error { return b.rawPair(pairs[i]) })
		check(err)
		after := b.snapshot()
		perS := round1(float64(len(pairs)) / d.Seconds())
		capa.CeilingRuns = append(capa.CeilingRuns, perS)
		b.report("capacity, raw ceiling", before, after, float64(len(pairs)), "pair")
		b.logf("capacity: raw ceiling %.0f pairs/s (%d Customers, each a create and a status write, %d writers)", perS, len(pairs), ceilingWriters)
		return cpuPer(before, after, float64(len(pairs)))
	}
	capa.CeilingCPU = ceiling("ceiling")

	paced := objs("paced", int(cfg.compareRate*cfg.step.Seconds()))
	before := b.snapshot()
	rawProfiled := b.apiProfile(fmt.Sprintf("apiserver-cpu-capacity-raw-%.0f.pprof", cfg.compareRate), cfg.step)
	b.paced(len(paced), cfg.compareRate, func(i int) {
		if err := b.rawPair(paced[i]); err != nil {
			b.logf("capacity: raw pair %d: %v", i, err)
		}
	})
	after := b.snapshot()
	<-rawProfiled
	capa.RawAtRateCPU = cpuPer(before, after, float64(len(paced)))
	b.report(fmt.Sprintf("capacity, raw pairs at %.0f/s", cfg.compareRate), before, after, float64(len(paced)), "pair")

	ns := "capacity"
	b.namespace(ns, sinkURL)
	opts := managerOptions("manager-capacity", "all")
	opts.Extra = append(opts.Extra, fmt.Sprintf("--max-concurrent-reconciles=%d", b.workers))
	m, err := b.cp.StartManager(b.ctx, b.bin, opts)
	check(err)
	defer m.Stop(10 * time.Second)
	s := &localcluster.Sender{Targets: []string{m.WebhookURL}, Namespace: ns, Source: "gettrx", Secret: sourceKey, RetryFor: 2 * time.Minute}
	b.warm(s, "warm-capacity")
	// A fresh manager first lists and reconciles the Customers the earlier
	// phases left; the steps measure the steady state after that.
	startup := time.Now()
	b.quiet(m, 2*time.Minute)
	b.logf("capacity: %s quiet after %.0fs of start-up", m.Name, time.Since(startup).Seconds())
	// The first seconds of load into a quiet manager were slower (p99 0.6 s at
	// 50/s, against under 0.1 s from then on): connections opened, queues and
	// pools grown. A short load first keeps that out of the first step.
	warmup := s.Load(b.ctx, "warmup-", cfg.rates[0], 3*time.Second)
	b.waitDelivered(warmup, r, 30*time.Second)
	b.settle(m)

	for i, rate := range cfg.rates {
		st := b.capacityStep(m, s, r, rate, cfg.step, rate == cfg.compareRate)
		capa.Steps = append(capa.Steps, st)
		if rate == cfg.compareRate {
			res.LatencyP50Ms, res.LatencyP99Ms, res.LatencyEvents = st.P50Ms, st.P99Ms, st.Delivered
			capa.OperatorCPUMs = st.CPU.Manager
			if capa.RawAtRateCPU.LoadGenerator > 0 {
				capa.OperatorRawClientRatio = round2(st.CPU.Manager / capa.RawAtRateCPU.LoadGenerator)
			}
			if capa.RawAtRateCPU.APIServer > 0 {
				capa.APIServerRatio = round2(st.CPU.APIServer / capa.RawAtRateCPU.APIServer)
			}
		}
		if st.Absorbed {
			capa.KneeRate = rate
		}
		// A rate not absorbed only falls further behind at the next one; the
		// steps up to the compare rate are always measured, since on a shared
		// machine a stall can fail a low one.
		if !st.Absorbed && rate >= cfg.compareRate {
			// One more step halfway from the last rate absorbed halves the
			// knee's uncertainty, which the steps' spacing sets.
			if i > 0 && capa.KneeRate == cfg.rates[i-1] {
				mid := math.Round((capa.KneeRate + rate) / 2)
				b.settle(m)
				st := b.capacityStep(m, s, r, mid, cfg.step, false)
				capa.Steps = append(capa.Steps, st)
				if st.Absorbed {
					capa.KneeRate = mid
				}
			}
			break
		}
	}
	// The ceiling again, the manager stopped: a burst of seconds is what a
	// shared machine's stalls move most, and the knee is set against the
	// median of the measurements (the mean of the two).
	m.Stop(10 * time.Second)
	_ = ceiling("ceiling-after")
	capa.CeilingPairsPerS = round1(benchutil.Median(capa.CeilingRuns))
	if capa.CeilingPairsPerS > 0 {
		capa.KneeRatio = round2(capa.KneeRate / capa.CeilingPairsPerS)
	}
	b.logf("capacity: knee %.0f events/s (POST → sink p99 < %s), %.2f× the raw ceiling of %.0f pairs/s; at %.0f/s the manager spends %.3f ms per event, the API server %.3f ms against %.3f ms for a raw pair (%.2f×)",
		capa.KneeRate, kneeP99, capa.KneeRatio, capa.CeilingPairsPerS, cfg.compareRate, capa.OperatorCPUMs,
		capaStepCPU(capa, cfg.compareRate).APIServer, capa.RawAtRateCPU.APIServer, capa.APIServerRatio)
}

func capaStepCPU(c *Capacity, rate float64) ProcessCPU {
	for _, st := range c.Steps {
		if st.Rate == rate {
			return st.CPU
		}
	}
	return ProcessCPU{}
}

// rawPair creates c as the webhook server does, then writes the status the
// controller writes once a new Customer has reached its one sink, as the
// controller's field manager and under the resourceVersion of the create.
func (b *bench) rawPair(c *crmv1alpha1.Customer) error {
	if err := b.k8s.Create(b.ctx, c); err != nil {
		return fmt.Errorf("creating %s: %w", c.Name, err)
	}
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	c.Status = deliveredStatus(c, "receiver")
	if err := b.k8s.Status().Patch(b.ctx, c, patch, client.FieldOwner(managerFieldOwner)); err != nil {
		return fmt.Errorf("writing the status of %s: %w", c.Name, err)
	}
	return nil
}

// deliveredStatus is the status the Customer controller writes for a new,
// valid Customer once its one sink has it: Ready, Synced, the last event and
// the sink's entry.
func deliveredStatus(c *crmv1alpha1.Customer, sink string) crmv1alpha1.CustomerStatus {
	st := noSinksStatus(c)
	return syncedStatus(&crmv1alpha1.Customer{ObjectMeta: c.ObjectMeta, Status: st}, sink)
}

// paced runs job(0) … job(n-1) at rate per second, each in its own goroutine
// started on schedule whatever the earlier ones take, as a provider sends;
// it returns once all have ended.
func (b *bench) paced(n int, rate float64, job func(i int)) {
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Go(func() { job(i) })
	}
	wg.Wait()
}

// capacityStep offers rate events a second for d to the manager's webhook
// server, waits until every acknowledged event has reached the sink (or a
// minute) and the manager has written what follows, and reports latency and
// each process's CPU per event.
func (b *bench) capacityStep(m *localcluster.Manager, s *localcluster.Sender, r *localcluster.Receiver, rate float64, d time.Duration, profile bool) CapacityStep {
	prefix := "s" + strconv.Itoa(int(rate)) + "-"
	before := b.snapshot(m)
	var profiled []<-chan struct{}
	if profile {
		name := fmt.Sprintf("capacity-%.0f.pprof", rate)
		profiled = append(profiled,
			b.profile(m, "cpu-"+name, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))),
			b.apiProfile("apiserver-cpu-"+name, d))
	}
	results := s.Load(b.ctx, prefix, rate, d)
	lastSend := time.Now()
	for _, p := range profiled {
		<-p
	}

	var acked []*localcluster.Result
	var acks []float64
	retried, unavailable := 0, 0
	for _, x := range results {
		if x.Attempts > 1 {
			retried++
			unavailable += x.Unavailable
		}
		if x.OK() {
			acked = append(acked, x)
			acks = append(acks, float64(x.Acked.Sub(x.Sent).Microseconds())/1000)
		}
	}
	slices.Sort(acks)
	delivered := b.waitDelivered(acked, r, time.Minute)
	var last time.Time
	lat := make([]float64, 0, len(results))
	for _, x := range results {
		rc, ok := r.Get(webhookserver.CustomerName(crmv1alpha1.ProviderGETTRX, x.CustomerID))
		if !x.OK() || !ok {
			lat = append(lat, math.Inf(1))
			continue
		}
		lat = append(lat, float64(rc.First.Sub(x.Sent).Microseconds())/1000)
		if rc.First.After(last) {
			last = rc.First
		}
	}
	// The statuses follow the deliveries: the step's CPU includes them.
	b.settle(m)
	after := b.snapshot(m)
	slices.Sort(lat)
	st := CapacityStep{Rate: rate, Events: len(results), Delivered: delivered,
		P50Ms: finite(percentile(lat, 0.5)), P99Ms: finite(percentile(lat, 0.99)), MaxMs: finite(percentile(lat, 1)),
		CPU: cpuPer(before, after, float64(len(results)))}
	if !last.IsZero() {
		st.CatchUpS = round1(max(0, last.Sub(lastSend).Seconds()))
	}
	p99 := percentile(lat, 0.99)
	st.Absorbed = len(results) > 0 && !math.IsInf(p99, 1) && p99 < float64(kneeP99.Milliseconds())
	b.report(fmt.Sprintf("capacity, %.0f/s", rate), before, after, float64(len(results)), "event")
	b.logWindows(results, r)
	b.logf("capacity: %.0f/s for %s: %d events, %d acknowledged (POST → 2xx p50 %.0f ms, p99 %.0f ms; %d retried, %d answers 503), %d delivered; POST → sink p50 %.0f ms, p99 %.0f ms, max %.0f ms; last delivery %.1fs after the last send; absorbed: %v",
		rate, d, len(results), len(acked), percentile(acks, 0.5), percentile(acks, 0.99), retried, unavailable, delivered, st.P50Ms, st.P99Ms, st.MaxMs, st.CatchUpS, st.Absorbed)
	return st
}

// waitDelivered waits until every acknowledged event of results has reached
// the sink, or for limit; it returns how many did.
func (b *bench) waitDelivered(results []*localcluster.Result, r *localcluster.Receiver, limit time.Duration) int {
	deadline := time.Now().Add(limit)
	for {
		acked, delivered := 0, 0
		for _, x := range results {
			if !x.OK() {
				continue
			}
			acked++
			if _, ok := deliveredMs(x, r); ok {
				delivered++
			}
		}
		if delivered == acked || time.Now().After(deadline) {
			return delivered
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settle waits until the manager's CPU stays under 2% of a core for a second
// (or 30 s at most): its status writes after the last deliveries are done.
func (b *bench) settle(m *localcluster.Manager) {
	const poll = 250 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	last, calm := cpuOf(m.Pid()), 0
	for calm < 4 && time.Now().Before(deadline) {
		time.Sleep(poll)
		now := cpuOf(m.Pid())
		if now-last <= poll/50 {
			calm++
		} else {
			calm = 0
		}
		last = now
	}
}

// cpuPer is each process's CPU between two snapshots per unit, in ms.
func cpuPer(before, after load, units float64) ProcessCPU {
	per := func(name string) float64 {
		return round3(float64((after.cpu[name] - before.cpu[name]).Microseconds()) / 1000 / units)
	}
	return ProcessCPU{Manager: per("manager"), APIServer: per("kube-apiserver"), Etcd: per("etcd"), LoadGenerator: per("bench")}
}

// finite is x, or -1 for an infinite percentile (events lost or never acknowledged).
func finite(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return -1
	}
	return round1(x)
}

// parseRates parses a comma-separated list of rates, lowest first.
func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("capacity rate %q: not a positive number", f)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}
