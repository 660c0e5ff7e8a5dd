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

// Command manager runs customer-operator: the webhook server that turns provider
// webhooks into Customers, the controllers that reconcile Customers, sources and
// sinks, or both.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/heaprelease"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/webhookserver"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(crmv1alpha1.AddToScheme(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr, mode string
		leaderElect                  bool
		leaderElectionNamespace      string
		leaseDuration, renewDeadline time.Duration
		retryPeriod                  time.Duration
		pprofAddr                    string
		webhookOpts                  webhookserver.Options
		genericLimits                generic.Limits
		workers, perSink             int
		inFlight, inFlightPerNS      int
		startupGCPercent             int
		deleteGrace                  time.Duration
		sinkHeaderTimeout            time.Duration
		metricsSecure, showVersion   bool
		metricsCertDir, watchNS      string
	)
	var sinkAllowCIDRs, sinkDenyCIDRs string
	flag.BoolVar(&showVersion, "version", false, "Print the version and commit, then exit.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.BoolVar(&metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to callers whose token may get /metrics (TokenReview and SubjectAccessReview); false serves plain HTTP to anyone.")
	flag.StringVar(&metricsCertDir, "metrics-cert-path", "", "Directory with tls.crt and tls.key for the metrics endpoint (for example from cert-manager); empty uses a self-signed certificate.")
	flag.StringVar(&watchNS, "watch-namespaces", "", "Comma-separated namespaces whose sources, sinks, Customers and Secrets are served; empty means all.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader among the replicas running controllers (the webhook server runs on every replica).")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; required outside a cluster (in a Pod it defaults to the Pod's namespace).")
	flag.DurationVar(&leaseDuration, "leader-election-lease-duration", 15*time.Second, "How long a standby waits after the leader's last renewal before it takes over.")
	flag.DurationVar(&renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader retries renewing its Lease before it gives up leading and exits; an API server outage longer than this restarts the leader.")
	flag.DurationVar(&retryPeriod, "leader-election-retry-period", 2*time.Second, "How often leader election renews or tries to acquire the Lease.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of the net/http/pprof endpoints (/debug/pprof/); empty disables them. Bind it to loopback.")
	flag.StringVar(&mode, "mode", "all", "Which parts run: all, controllers or webhook.")
	flag.StringVar(&webhookOpts.BindAddress, "webhook-bind-address", webhookserver.DefaultOptions.BindAddress, "Address the webhook server listens on.")
	flag.Int64Var(&webhookOpts.MaxBodyBytes, "webhook-max-body-bytes", webhookserver.DefaultOptions.MaxBodyBytes, "Largest webhook body accepted; larger ones are answered 413.")
	flag.DurationVar(&webhookOpts.ReadHeaderTimeout, "webhook-read-header-timeout", webhookserver.DefaultOptions.ReadHeaderTimeout, "Time allowed to read a webhook request's headers.")
	flag.DurationVar(&webhookOpts.ReadTimeout, "webhook-read-timeout", webhookserver.DefaultOptions.ReadTimeout, "Time allowed to read a whole webhook request.")
	flag.DurationVar(&webhookOpts.APITimeout, "webhook-api-timeout", webhookserver.DefaultOptions.APITimeout, "Time allowed for the Kubernetes API calls of one webhook; past it the answer is 503.")
	flag.IntVar(&webhookOpts.MaxEventsPerRequest, "webhook-max-events-per-request", webhookserver.DefaultOptions.MaxEventsPerRequest, "Events (customer events or not) one webhook request may carry; decoding stops at the first one past it and the answer is 413.")
	flag.Int64Var(&webhookOpts.MaxBufferedBytes, "webhook-max-buffered-bytes", webhookserver.DefaultOptions.MaxBufferedBytes, "Request body bytes buffered at once across the webhook server, their decoding included; past it a request is answered 503 with Retry-After.")
	flag.IntVar(&webhookOpts.AuthFailuresPerMinute, "webhook-auth-failures-per-minute", webhookserver.DefaultOptions.AuthFailuresPerMinute, "Failed authentications (and stalled or broken-off bodies) one client address may make at one source at once and per minute; past it its requests to that source are answered 429. Negative: no limit.")
	flag.IntVar(&webhookOpts.AddressFailuresPerMinute, "webhook-address-failures-per-minute", webhookserver.DefaultOptions.AddressFailuresPerMinute, "Failed authentications and unknown paths one client address may have across all sources at once and per minute; past it all its requests are answered 429. Keep it well above --webhook-auth-failures-per-minute: providers share addresses between tenants. Negative: no limit.")
	flag.IntVar(&webhookOpts.MaxBodyReadsPerAddress, "webhook-max-body-reads-per-address", webhookserver.DefaultOptions.MaxBodyReadsPerAddress, "Request bodies one client address may have being read at once before they are authenticated; past it the answer is 429. Negative: no limit.")
	flag.DurationVar(&webhookOpts.SweepInterval, "state-sweep-interval", webhookserver.DefaultOptions.SweepInterval, "How often what is kept for objects that are gone is pruned: cached Secret data nothing references, and the limits and metric series of deleted CustomerSources.")
	flag.Func("webhook-trusted-proxies", "Comma-separated CIDRs of reverse proxies (the Ingress controller) whose X-Forwarded-For names the client address; empty: the peer is the client.", func(v string) (err error) {
		webhookOpts.TrustedProxies, err = webhookserver.ParsePrefixes(v)
		return err
	})
	flag.Uint64Var(&genericLimits.RuntimeCost, "generic-runtime-cost-limit", generic.DefaultLimits.RuntimeCost, "CEL cost one event's expressions of a generic CustomerSource may spend (Kubernetes' per-rule limit for CRDs); past it the event is rejected, expression_failed.")
	flag.Uint64Var(&genericLimits.EstimatedCost, "generic-estimated-cost-limit", generic.DefaultLimits.EstimatedCost, "Largest cost CEL may estimate for one expression of a generic CustomerSource, with every list and string of the body as large as --webhook-max-body-bytes; past it the source is Ready=False, InvalidExpression. Give the controllers and the webhook server the same value.")
	flag.IntVar(&workers, "max-concurrent-reconciles", 8, "Customer reconcile workers.")
	flag.IntVar(&startupGCPercent, "startup-gc-percent", 25, "Go GC percent during the start-up (the Customer cache's initial list, then the reconcile of every Customer); GOGC is restored once the Customer queue has emptied. 0 keeps GOGC throughout; a GOGC in the environment is left alone.")
	flag.IntVar(&perSink, "sink-concurrency", 16, "Deliveries in flight to one CustomerSink at most.")
	flag.IntVar(&inFlight, "max-deliveries-in-flight", engine.DefaultMaxInFlight, "Deliveries in flight across every CustomerSink at most: the delivery workers, shared round-robin between namespaces, so goroutines and connections do not grow with the number of sinks.")
	flag.IntVar(&inFlightPerNS, "max-deliveries-in-flight-per-namespace", 0, "Deliveries in flight to the CustomerSinks of one namespace at most, so that one namespace's slow sinks leave slots to the others; 0 means three quarters of --max-deliveries-in-flight.")
	flag.DurationVar(&sinkHeaderTimeout, "sink-response-header-timeout", delivery.MaxTimeout, "How long a delivery waits for the sink's answer headers once its request is sent, at most; a sink's spec.timeout (at most 60s) bounds the whole delivery within it.")
	flag.DurationVar(&deleteGrace, "delete-grace-period", controllers.DefaultDeleteGracePeriod, "How long a Customer's delete is retried at a failing sink before the Customer is let go.")
	flag.StringVar(&sinkDenyCIDRs, "sink-deny-cidrs", strings.Join(delivery.DefaultDenyCIDRs, ","),
		"Comma-separated CIDRs deliveries may not connect to, checked on the resolved address at connect time; empty denies nothing.")
	flag.StringVar(&sinkAllowCIDRs, "sink-allow-cidrs", "", "Comma-separated CIDRs deliveries may connect to even when --sink-deny-cidrs holds them.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	genericLimits.MaxBodyBytes = webhookOpts.MaxBodyBytes
	generic.SetLimits(genericLimits)
	if showVersion {
		fmt.Println(versionString())
		os.Exit(0)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	runControllers, runWebhook := mode == "all" || mode == "controllers", mode == "all" || mode == "webhook"
	if !runControllers && !runWebhook {
		fmt.Fprintf(os.Stderr, "--mode must be all, controllers or webhook, not %q\n", mode)
		os.Exit(2)
	}

	if webhookOpts.SweepInterval <= 0 {
		fmt.Fprintf(os.Stderr, "--state-sweep-interval must be positive, not %s\n", webhookOpts.SweepInterval)
		os.Exit(2)
	}

	addressPolicy, err := sinkAddressPolicy(sinkAllowCIDRs, sinkDenyCIDRs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if sinkHeaderTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "--sink-response-header-timeout must be positive")
		os.Exit(2)
	}
	if inFlight < 1 || perSink < 1 || inFlightPerNS < 0 || inFlightPerNS > inFlight {
		fmt.Fprintln(os.Stderr, "--max-deliveries-in-flight and --sink-concurrency must be at least 1, and --max-deliveries-in-flight-per-namespace between 0 and --max-deliveries-in-flight")
		os.Exit(2)
	}

	// Managed fields are a third of a Customer's size and nobody here reads them;
	// the Customers' repeated strings and label sets are shared.
	transform := cachetransform.New()
	if !runWebhook {
		// Only the webhook server reads its de-duplication state, the
		// controllers read the last-event annotations only to mirror them into
		// status.lastEvent, and they write Customers with patches: leaving those
		// out of the cache loses nothing.
		transform.DropAnnotations(webhookserver.OwnAnnotations...).DropMirroredLastEvent()
	}
	cacheOpts := cache.Options{DefaultTransform: transform.TransformFunc()}
	var namespaces []string
	for _, ns := range strings.Split(watchNS, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	webhookOpts.Namespaces = namespaces
	if len(namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: metricsSecure,
		CertDir:       metricsCertDir,
		// HTTP/2 stays off, as kubebuilder scaffolds it: its stream handling was open
		// to "rapid reset" denial of service (CVE-2023-44487, CVE-2023-39325).
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if metricsSecure {
		// Only callers whose token may get /metrics (the metrics-reader ClusterRole)
		// read them; the manager checks with TokenReviews and SubjectAccessReviews.
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect && runControllers,
		LeaderElectionID:              "customer-operator.crm.customer-operator.io",
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
		PprofBindAddress:              pprofAddr,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}
	// The controllers watch Secrets' metadata anyway; the webhook server alone may
	// only get Secrets, so it reads them by name with a short TTL.
	secrets := secretcache.NewByName(mgr.GetAPIReader(), secretcache.DefaultTTL, namespaces...)
	if runControllers {
		secrets = secretcache.New(mgr.GetClient(), mgr.GetAPIReader())
		err = controllers.SetupSecretCache(context.Background(), mgr, secrets, webhookOpts.SweepInterval)
	} else {
		err = mgr.Add(&secretcache.Sweeper{Store: secrets, Interval: webhookOpts.SweepInterval})
	}
	if err != nil {
		log.Error(err, "unable to set up the Secret cache")
		os.Exit(1)
	}

	if runControllers {
		deliveries, err := controllers.NewEngine(mgr, secrets, controllers.EngineOptions{Client: &delivery.Client{Policy: addressPolicy, ResponseHeaderTimeout: sinkHeaderTimeout, Log: ctrl.Log.WithName("delivery")}, PerSinkConcurrency: perSink,
			MaxInFlight: inFlight, MaxInFlightPerNamespace: inFlightPerNS})
		if err != nil {
			log.Error(err, "unable to set up the delivery engine")
			os.Exit(1)
		}
		if err := (&controllers.CustomerReconciler{
			Client:                  mgr.GetClient(),
			Recorder:                mgr.GetEventRecorder("customer-controller"),
			Secrets:                 secrets,
			Deliveries:              deliveries,
			DeleteGracePeriod:       deleteGrace,
			MaxConcurrentReconciles: workers,
		}).SetupWithManager(mgr); err != nil {
			log.Error(err, "unable to set up the Customer controller")
			os.Exit(1)
		}
		if err := (&controllers.CustomerSourceReconciler{
			Client:   mgr.GetClient(),
			Recorder: mgr.GetEventRecorder("customersource-controller"),
			Secrets:  secrets,
		}).SetupWithManager(mgr); err != nil {
			log.Error(err, "unable to set up the CustomerSource controller")
			os.Exit(1)
		}
		if err := (&controllers.CustomerSinkReconciler{Client: mgr.GetClient(), Secrets: secrets, Deliveries: deliveries, AddressPolicy: addressPolicy}).SetupWithManager(mgr); err != nil {
			log.Error(err, "unable to set up the CustomerSink controller")
			os.Exit(1)
		}
	}
	if runWebhook {
		if webhookOpts.CreateCustomer, err = webhookserver.NewMetadataCreate(mgr.GetConfig(), mgr.GetHTTPClient()); err != nil {
			log.Error(err, "unable to set up the webhook server's Customer creates")
			os.Exit(1)
		}
		if err := mgr.Add(webhookserver.New(webhookOpts, mgr.GetClient(), mgr.GetAPIReader(), secrets, mgr.GetEventRecorder("webhook-server"))); err != nil {
			log.Error(err, "unable to add the webhook server")
			os.Exit(1)
		}
	}

	// The start-up (the initial list of every Customer, then a reconcile of
	// each) packs the cache into less memory and peaks lower when the GC runs
	// more often meanwhile.
	startupGC := &heaprelease.StartupGC{
		Percent: startupGCPercent,
		Settled: func(ctx context.Context) error {
			if _, err := mgr.GetCache().GetInformer(ctx, &crmv1alpha1.Customer{}); err != nil {
				return fmt.Errorf("waiting for the Customer cache: %w", err)
			}
			if !runControllers {
				return nil
			}
			// A queue that never empties (a manager started into heavy load)
			// gets the runtime's GC percent back after a while all the same.
			drainCtx, cancel := context.WithTimeout(ctx, startupDrainLimit)
			defer cancel()
			if err := controllers.QueueDrained(drainCtx, controllers.CustomerControllerName, time.Second); err != nil && drainCtx.Err() == nil {
				return err
			}
			return nil
		},
		// A controllers-only standby lists no Customers until it leads.
		LeaderElection: mode == "controllers",
		Log:            ctrl.Log.WithName("heaprelease"),
	}
	if err := mgr.Add(startupGC); err != nil {
		log.Error(err, "unable to add the start-up GC setting")
		os.Exit(1)
	}
	// The start-up (the initial list, a reconcile of every Customer) leaves much of
	// the heap free; it goes back to the OS once the manager is idle.
	if err := mgr.Add(&heaprelease.Releaser{Log: ctrl.Log.WithName("heaprelease")}); err != nil {
		log.Error(err, "unable to add the heap releaser")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}

	log.Info("starting", "version", versionString(), "mode", mode, "webhookAddress", webhookOpts.BindAddress, "namespaces", namespaces)
	startupGC.Lower()
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}

// startupDrainLimit bounds how long after the initial list the start-up GC
// percent waits for the Customer queue to empty: 50,000 Customers take about
// 15 s on two cores.
const startupDrainLimit = 5 * time.Minute

// sinkAddressPolicy reads --sink-allow-cidrs and --sink-deny-cidrs.
func sinkAddressPolicy(allow, deny string) (delivery.AddressPolicy, error) {
	var p delivery.AddressPolicy
	var err error
	if p.Allow, err = delivery.ParseCIDRs(allow); err != nil {
		return p, fmt.Errorf("--sink-allow-cidrs: %w", err)
	}
	if p.Deny, err = delivery.ParseCIDRs(deny); err != nil {
		return p, fmt.Errorf("--sink-deny-cidrs: %w", err)
	}
	return p, nil
}
