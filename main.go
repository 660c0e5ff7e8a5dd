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
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/controllers"
	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/internal/secretcache"
	"github.com/customer-operator/customer-operator/webhookserver"
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
		webhookOpts                  webhookserver.Options
		workers, perSink             int
		deleteGrace                  time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader among the replicas running controllers (the webhook server runs on every replica).")
	flag.StringVar(&mode, "mode", "all", "Which parts run: all, controllers or webhook.")
	flag.StringVar(&webhookOpts.BindAddress, "webhook-bind-address", webhookserver.DefaultOptions.BindAddress, "Address the webhook server listens on.")
	flag.Int64Var(&webhookOpts.MaxBodyBytes, "webhook-max-body-bytes", webhookserver.DefaultOptions.MaxBodyBytes, "Largest webhook body accepted; larger ones are answered 413.")
	flag.DurationVar(&webhookOpts.ReadHeaderTimeout, "webhook-read-header-timeout", webhookserver.DefaultOptions.ReadHeaderTimeout, "Time allowed to read a webhook request's headers.")
	flag.DurationVar(&webhookOpts.ReadTimeout, "webhook-read-timeout", webhookserver.DefaultOptions.ReadTimeout, "Time allowed to read a whole webhook request.")
	flag.DurationVar(&webhookOpts.APITimeout, "webhook-api-timeout", webhookserver.DefaultOptions.APITimeout, "Time allowed for the Kubernetes API calls of one webhook; past it the answer is 503.")
	flag.IntVar(&workers, "max-concurrent-reconciles", 8, "Customer reconcile workers.")
	flag.IntVar(&perSink, "sink-concurrency", 16, "Delivery workers of each CustomerSink: deliveries in flight to one sink at most.")
	flag.DurationVar(&deleteGrace, "delete-grace-period", controllers.DefaultDeleteGracePeriod, "How long a Customer's delete is retried at a failing sink before the Customer is let go.")
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	runControllers, runWebhook := mode == "all" || mode == "controllers", mode == "all" || mode == "webhook"
	if !runControllers && !runWebhook {
		fmt.Fprintf(os.Stderr, "--mode must be all, controllers or webhook, not %q\n", mode)
		os.Exit(2)
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme: scheme,
		// Managed fields are a third of a Customer's size and nobody here reads them.
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect && runControllers,
		LeaderElectionID:              "customer-operator.crm.customer-operator.io",
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		log.Error(err, "unable to create the manager")
		os.Exit(1)
	}
	secrets := secretcache.New(mgr.GetClient(), mgr.GetAPIReader())

	if runControllers {
		deliveries, err := controllers.NewEngine(mgr, secrets, controllers.EngineOptions{Client: &delivery.Client{}, PerSinkConcurrency: perSink})
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
		if err := (&controllers.CustomerSourceReconciler{Client: mgr.GetClient(), Secrets: secrets}).SetupWithManager(mgr); err != nil {
			log.Error(err, "unable to set up the CustomerSource controller")
			os.Exit(1)
		}
		if err := (&controllers.CustomerSinkReconciler{Client: mgr.GetClient(), Secrets: secrets, Deliveries: deliveries}).SetupWithManager(mgr); err != nil {
			log.Error(err, "unable to set up the CustomerSink controller")
			os.Exit(1)
		}
	}
	if runWebhook {
		if err := mgr.Add(webhookserver.New(webhookOpts, mgr.GetClient(), mgr.GetAPIReader(), secrets)); err != nil {
			log.Error(err, "unable to add the webhook server")
			os.Exit(1)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}

	log.Info("starting", "mode", mode, "webhookAddress", webhookOpts.BindAddress)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}
