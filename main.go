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
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers"
	"github.com/customer-operator/customer-operator/internal/apiwrites"
	"github.com/customer-operator/customer-operator/internal/cachetransform"
	"github.com/customer-operator/customer-operator/internal/heaprelease"
	"github.com/customer-operator/customer-operator/internal/lazylog"
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
		opts           managerOptions
		webhookOpts    webhookserver.Options
		controllerOpts controllers.Options
		genericLimits  generic.Limits
	)
	opts.BindFlags(flag.CommandLine)
	webhookOpts.BindFlags(flag.CommandLine)
	controllerOpts.BindFlags(flag.CommandLine)
	genericLimits.BindFlags(flag.CommandLine)
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	// Both parts compile generic sources' expressions, with the same limits.
	genericLimits.MaxBodyBytes = webhookOpts.MaxBodyBytes
	generic.SetLimits(genericLimits)
	if opts.showVersion {
		fmt.Println(versionString())
		os.Exit(0)
	}
	// Every reconcile and webhook request gets a logger with its object's
	// values, and most write nothing: the values are encoded when a line is.
	ctrl.SetLogger(lazylog.New(zap.New(zap.UseFlagOptions(&zapOpts))))
	log := ctrl.Log.WithName("setup")

	for _, validate := range []func() error{opts.Validate, webhookOpts.Validate, controllerOpts.Validate} {
		if err := validate(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	runControllers, runWebhook := opts.runControllers(), opts.runWebhook()
	webhookOpts.Namespaces = opts.namespaces()

	cfg := restConfig()
	writes, err := apiwrites.NewHTTPClient(cfg)
	if err != nil {
		log.Error(err, "unable to build the API server's client")
		os.Exit(1)
	}
	mgr, err := newManager(&opts, cfg, writes)
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}
	secrets, err := setupSecrets(mgr, &opts, webhookOpts.SweepInterval)
	if err != nil {
		log.Error(err, "unable to set up the Secret cache")
		os.Exit(1)
	}
	if runControllers {
		if err := controllers.Setup(mgr, secrets, controllerOpts); err != nil {
			log.Error(err, "unable to set up the controllers")
			os.Exit(1)
		}
	}
	if runWebhook {
		if webhookOpts.CreateCustomer, err = webhookserver.NewMetadataCreate(mgr.GetConfig(), writes); err != nil {
			log.Error(err, "unable to set up the webhook server's Customer creates")
			os.Exit(1)
		}
		if err := mgr.Add(webhookserver.New(webhookOpts, mgr.GetClient(), mgr.GetAPIReader(), secrets, mgr.GetEventRecorder("webhook-server"))); err != nil {
			log.Error(err, "unable to add the webhook server")
			os.Exit(1)
		}
	}
	startupGC, err := setupHeap(mgr, &opts)
	if err != nil {
		log.Error(err, "unable to set up the heap's management")
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

	log.Info("starting", "version", versionString(), "mode", opts.mode, "webhookAddress", webhookOpts.BindAddress, "namespaces", webhookOpts.Namespaces)
	startupGC.Lower()
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}

// managerOptions are the manager's own flags: what runs, where it listens, and
// how its replicas elect a leader. The webhook server and the controllers bind
// theirs (webhookserver.Options, controllers.Options).
type managerOptions struct {
	metricsAddr, probeAddr, mode string
	leaderElect                  bool
	leaderElectionNamespace      string
	leaseDuration, renewDeadline time.Duration
	retryPeriod                  time.Duration
	pprofAddr                    string
	startupGCPercent             int
	metricsSecure, showVersion   bool
	metricsCertDir, watchNS      string
}

// BindFlags binds the manager's own flags to o.
func (o *managerOptions) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.showVersion, "version", false, "Print the version and commit, then exit.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to callers whose token may get /metrics (TokenReview and SubjectAccessReview); false serves plain HTTP to anyone.")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-path", "", "Directory with tls.crt and tls.key for the metrics endpoint (for example from cert-manager); empty uses a self-signed certificate.")
	fs.StringVar(&o.watchNS, "watch-namespaces", "", "Comma-separated namespaces whose sources, sinks, Customers and Secrets are served; empty means all.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader among the replicas running controllers (the webhook server runs on every replica).")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease; required outside a cluster (in a Pod it defaults to the Pod's namespace).")
	// Flux's defaults: the leader rides out an API server outage of up to the renew
	// deadline, a standby takes over a dead leader's Lease within the lease duration
	// and a retry period or two, and a clean shutdown releases the Lease at once.
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 35*time.Second, "How long a standby waits after the leader's last renewal before it takes over: the failover time when a leader dies.")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 30*time.Second, "How long the leader retries renewing its Lease before it gives up leading and exits; an API server outage longer than this restarts the leader.")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 5*time.Second, "How often leader election renews or tries to acquire the Lease.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of the net/http/pprof endpoints (/debug/pprof/); empty disables them. Bind it to loopback.")
	fs.StringVar(&o.mode, "mode", "all", "Which parts run: all, controllers or webhook.")
	fs.IntVar(&o.startupGCPercent, "startup-gc-percent", 25, "Go GC percent during the start-up (the Customer cache's initial list, then the reconcile of every Customer); GOGC is restored once the Customer queue has emptied. 0 keeps GOGC throughout; a GOGC in the environment is left alone.")
}

// Validate checks what the flags' types cannot, naming the flag.
func (o *managerOptions) Validate() error {
	if !o.runControllers() && !o.runWebhook() {
		return fmt.Errorf("--mode must be all, controllers or webhook, not %q", o.mode)
	}
	return nil
}

func (o *managerOptions) runControllers() bool { return o.mode == "all" || o.mode == "controllers" }
func (o *managerOptions) runWebhook() bool     { return o.mode == "all" || o.mode == "webhook" }

// namespaces are the namespaces of --watch-namespaces; none means all.
func (o *managerOptions) namespaces() []string {
	var namespaces []string
	for _, ns := range strings.Split(o.watchNS, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	return namespaces
}

// newManager builds the manager: its cache, metrics endpoint, probes and
// leader election.
// newManager builds the manager on cfg. Its client's requests (the creates, the
// status writes) go through writes; its cache's watches through its own client.
func newManager(o *managerOptions, cfg *rest.Config, writes *http.Client) (ctrl.Manager, error) {
	// Managed fields are a third of a Customer's size and nobody here reads them;
	// the Customers' repeated strings and label sets are shared.
	transform := cachetransform.New()
	if !o.runWebhook() {
		// Only the webhook server reads its de-duplication state, the
		// controllers read the last-event annotations only to mirror them into
		// status.lastEvent, and they write Customers with patches: leaving those
		// out of the cache loses nothing.
		transform.DropAnnotations(webhookserver.OwnAnnotations...).DropMirroredLastEvent()
	}
	cacheOpts := cache.Options{DefaultTransform: transform.TransformFunc()}
	if namespaces := o.namespaces(); len(namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	metricsOpts := metricsserver.Options{
		BindAddress:   o.metricsAddr,
		SecureServing: o.metricsSecure,
		CertDir:       o.metricsCertDir,
		// HTTP/2 stays off, as kubebuilder scaffolds it: its stream handling was open
		// to "rapid reset" denial of service (CVE-2023-44487, CVE-2023-39325).
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
	if o.metricsSecure {
		// Only callers whose token may get /metrics (the metrics-reader ClusterRole)
		// read them; the manager checks with TokenReviews and SubjectAccessReviews.
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		NewClient: func(cfg *rest.Config, o client.Options) (client.Client, error) {
			o.HTTPClient = writes
			return client.New(cfg, o)
		},
		Cache:                         cacheOpts,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect && o.runControllers(),
		LeaderElectionID:              "customer-operator.crm.customer-operator.io",
		LeaderElectionNamespace:       o.leaderElectionNamespace,
		LeaseDuration:                 &o.leaseDuration,
		RenewDeadline:                 &o.renewDeadline,
		RetryPeriod:                   &o.retryPeriod,
		PprofBindAddress:              o.pprofAddr,
		LeaderElectionReleaseOnCancel: true,
	})
}

// restConfig is the API server's address and credentials, with gzip off. The
// API server compresses a watch stream flush by flush when asked: each
// Customer's create and status write comes back as a watch event of a few
// kilobytes, which the API server compressed and the manager decompressed,
// both on the CPU the operator is sized by, to save bytes that stay inside the
// cluster. Lists are compressed only above 128 KiB, at start-up.
func restConfig() *rest.Config {
	cfg := ctrl.GetConfigOrDie()
	cfg.DisableCompression = true
	return cfg
}

// setupSecrets builds the Secret store. The controllers watch Secrets' metadata
// anyway; the webhook server alone may only get Secrets, so it reads them by
// name with a short TTL.
func setupSecrets(mgr ctrl.Manager, o *managerOptions, sweep time.Duration) (*secretcache.Store, error) {
	if o.runControllers() {
		secrets := secretcache.New(mgr.GetClient(), mgr.GetAPIReader())
		return secrets, controllers.SetupSecretCache(context.Background(), mgr, secrets, sweep)
	}
	secrets := secretcache.NewByName(mgr.GetAPIReader(), secretcache.DefaultTTL, o.namespaces()...)
	return secrets, mgr.Add(&secretcache.Sweeper{Store: secrets, Interval: sweep})
}

// startupDrainLimit bounds how long after the initial list the start-up GC
// percent waits for the Customer queue to empty: 50,000 Customers take about
// 15 s on two cores.
const startupDrainLimit = 5 * time.Minute

// setupHeap adds the start-up GC setting and the heap releaser to mgr.
func setupHeap(mgr ctrl.Manager, o *managerOptions) (*heaprelease.StartupGC, error) {
	// The start-up (the initial list of every Customer, then a reconcile of
	// each) packs the cache into less memory and peaks lower when the GC runs
	// more often meanwhile.
	startupGC := &heaprelease.StartupGC{
		Percent: o.startupGCPercent,
		Settled: func(ctx context.Context) error {
			if _, err := mgr.GetCache().GetInformer(ctx, &crmv1alpha1.Customer{}); err != nil {
				return fmt.Errorf("waiting for the Customer cache: %w", err)
			}
			if !o.runControllers() {
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
		LeaderElection: o.mode == "controllers",
		Log:            ctrl.Log.WithName("heaprelease"),
	}
	if err := mgr.Add(startupGC); err != nil {
		return nil, fmt.Errorf("adding the start-up GC setting: %w", err)
	}
	// The start-up (the initial list, a reconcile of every Customer) leaves much of
	// the heap free; it goes back to the OS once the manager is idle.
	if err := mgr.Add(&heaprelease.Releaser{Log: ctrl.Log.WithName("heaprelease")}); err != nil {
		return nil, fmt.Errorf("adding the heap releaser: %w", err)
	}
	return startupGC, nil
}
