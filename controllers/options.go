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
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/customer-operator/customer-operator/controllers/delivery"
	"github.com/customer-operator/customer-operator/controllers/engine"
	"github.com/customer-operator/customer-operator/internal/secretcache"
)

// Options are the settings of the controllers and of the delivery engine they
// share. BindFlags binds the manager's flags to them; the suites and the
// benchmarks set them directly.
type Options struct {
	// MaxConcurrentReconciles is the number of Customer reconcile workers.
	MaxConcurrentReconciles int
	// DeleteGracePeriod bounds how long a Customer's delete waits for a failing sink.
	DeleteGracePeriod time.Duration
	// PerSinkConcurrency, MaxInFlight and MaxInFlightPerNamespace bound the
	// deliveries in flight: see EngineOptions.
	PerSinkConcurrency, MaxInFlight, MaxInFlightPerNamespace int
	// SinkResponseHeaderTimeout bounds the wait for a sink's answer headers.
	SinkResponseHeaderTimeout time.Duration
	// SinkMaxConnections and SinkMaxConnectionsPerNamespace bound the
	// database and broker connections of the sinks: see EngineOptions.
	SinkMaxConnections, SinkMaxConnectionsPerNamespace int
	// SinkAllowCIDRs and SinkDenyCIDRs are the comma-separated CIDRs
	// deliveries may and may not connect to; see AddressPolicy.
	SinkAllowCIDRs, SinkDenyCIDRs string

	// Client, when set, sends the deliveries instead of a client built from
	// the options above; the sinks' addresses are checked against its policy.
	Client *delivery.Client
	// BaseDelay and MaxDelay bound the engine's backoffs; zero means its defaults.
	BaseDelay, MaxDelay time.Duration
	// CountInterval is how soon a sink's counts follow its Customers; zero
	// means the reconciler's default.
	CountInterval time.Duration
}

// BindFlags binds the controllers' flags to o, with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 8, "Customer reconcile workers.")
	fs.IntVar(&o.PerSinkConcurrency, "sink-concurrency", 16, "Deliveries in flight to one CustomerSink at most.")
	fs.IntVar(&o.MaxInFlight, "max-deliveries-in-flight", engine.DefaultMaxInFlight, "Deliveries in flight across every CustomerSink at most: the delivery workers, shared round-robin between namespaces, so goroutines and connections do not grow with the number of sinks.")
	fs.IntVar(&o.MaxInFlightPerNamespace, "max-deliveries-in-flight-per-namespace", 0, "Deliveries in flight to the CustomerSinks of one namespace at most, so that one namespace's slow sinks leave slots to the others; 0 means three quarters of --max-deliveries-in-flight.")
	fs.IntVar(&o.SinkMaxConnections, "sink-max-connections", delivery.DefaultMaxSinkConnections, "Database and broker connections (PostgreSQL, Kafka, NATS sinks) open across every CustomerSink at most; a sink that cannot get one backs off with reason ConnectionLimit.")
	fs.IntVar(&o.SinkMaxConnectionsPerNamespace, "sink-max-connections-per-namespace", delivery.DefaultMaxSinkConnectionsPerNamespace, "Database and broker connections open for the CustomerSinks of one namespace at most, so that one namespace cannot take them all.")
	fs.DurationVar(&o.SinkResponseHeaderTimeout, "sink-response-header-timeout", delivery.MaxTimeout, "How long a delivery waits for the sink's answer headers once its request is sent, at most; a sink's spec.timeout (at most 60s) bounds the whole delivery within it.")
	fs.DurationVar(&o.DeleteGracePeriod, "delete-grace-period", DefaultDeleteGracePeriod, "How long a Customer's delete is retried at a failing sink before the Customer is let go.")
	fs.StringVar(&o.SinkDenyCIDRs, "sink-deny-cidrs", strings.Join(delivery.DefaultDenyCIDRs, ","),
		"Comma-separated CIDRs deliveries may not connect to, checked on the resolved address at connect time; empty denies nothing.")
	fs.StringVar(&o.SinkAllowCIDRs, "sink-allow-cidrs", "", "Comma-separated CIDRs deliveries may connect to even when --sink-deny-cidrs holds them.")
}

// Validate checks what the flags' types cannot, naming the flag.
func (o *Options) Validate() error {
	if _, err := o.AddressPolicy(); err != nil {
		return err
	}
	if o.SinkResponseHeaderTimeout <= 0 {
		return errors.New("--sink-response-header-timeout must be positive")
	}
	if o.MaxInFlight < 1 || o.PerSinkConcurrency < 1 || o.MaxInFlightPerNamespace < 0 || o.MaxInFlightPerNamespace > o.MaxInFlight {
		return errors.New("--max-deliveries-in-flight and --sink-concurrency must be at least 1, and --max-deliveries-in-flight-per-namespace between 0 and --max-deliveries-in-flight")
	}
	if o.SinkMaxConnections < 1 || o.SinkMaxConnectionsPerNamespace < 1 || o.SinkMaxConnectionsPerNamespace > o.SinkMaxConnections {
		return errors.New("--sink-max-connections must be at least 1, and --sink-max-connections-per-namespace between 1 and --sink-max-connections")
	}
	return nil
}

// AddressPolicy reads --sink-allow-cidrs and --sink-deny-cidrs.
func (o *Options) AddressPolicy() (delivery.AddressPolicy, error) {
	var p delivery.AddressPolicy
	var err error
	if p.Allow, err = delivery.ParseCIDRs(o.SinkAllowCIDRs); err != nil {
		return p, fmt.Errorf("--sink-allow-cidrs: %w", err)
	}
	if p.Deny, err = delivery.ParseCIDRs(o.SinkDenyCIDRs); err != nil {
		return p, fmt.Errorf("--sink-deny-cidrs: %w", err)
	}
	return p, nil
}

// Setup adds the delivery engine and the Customer, CustomerSource and
// CustomerSink reconcilers to mgr, reading Secrets through secrets. It is how
// the manager, the suites and the benchmarks wire the controllers.
func Setup(mgr ctrl.Manager, secrets *secretcache.Store, opts Options) error {
	c := opts.Client
	if c == nil {
		policy, err := opts.AddressPolicy()
		if err != nil {
			return err
		}
		c = &delivery.Client{Policy: policy, ResponseHeaderTimeout: opts.SinkResponseHeaderTimeout, Log: ctrl.Log.WithName("delivery")}
	}
	deliveries, err := NewEngine(mgr, secrets, EngineOptions{Client: c, PerSinkConcurrency: opts.PerSinkConcurrency,
		MaxInFlight: opts.MaxInFlight, MaxInFlightPerNamespace: opts.MaxInFlightPerNamespace,
		BaseDelay: opts.BaseDelay, MaxDelay: opts.MaxDelay,
		MaxSinkConnections: opts.SinkMaxConnections, MaxSinkConnectionsPerNamespace: opts.SinkMaxConnectionsPerNamespace})
	if err != nil {
		return fmt.Errorf("setting up the delivery engine: %w", err)
	}
	if err := (&CustomerReconciler{
		Client:                  mgr.GetClient(),
		Recorder:                mgr.GetEventRecorder("customer-controller"),
		Secrets:                 secrets,
		Deliveries:              deliveries,
		DeleteGracePeriod:       opts.DeleteGracePeriod,
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the Customer controller: %w", err)
	}
	if err := (&CustomerSourceReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("customersource-controller"),
		Secrets:  secrets,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the CustomerSource controller: %w", err)
	}
	if err := (&CustomerSinkReconciler{
		Client:        mgr.GetClient(),
		Secrets:       secrets,
		Deliveries:    deliveries,
		CountInterval: opts.CountInterval,
		AddressPolicy: c.Policy,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the CustomerSink controller: %w", err)
	}
	return nil
}
