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

// Command sendevent is a provider simulator: it signs (and for Phasio encrypts) a
// plaintext provider payload exactly as the provider does, posts it to the webhook
// server and prints the answer.
//
//	go run ./hack/sendevent --source default/phasio --file config/samples/events/phasio/customer-organisation-created.json
//
// The provider and the Secret come from the CustomerSource and its Secret in the
// cluster (--kubeconfig), or, with --provider and --secret, from the command line alone.
// --secret also overrides single keys of the cluster's Secret, e.g. to see a wrong
// key refused.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/registry"
)

// simulator returns the registered provider's simulator, so a new provider is
// usable here without an edit.
func simulator(name crmv1alpha1.Provider) (providers.Simulator, bool) {
	sim, ok := registry.Lookup(name).(providers.Simulator)
	return sim, ok
}

// providerNames lists the providers sendevent can sign for, for messages.
func providerNames() string {
	var names []string
	for _, n := range registry.Names() {
		if _, ok := simulator(n); ok {
			names = append(names, string(n))
		}
	}
	return strings.Join(names, ", ")
}

// secretFlags collects repeated --secret key=value.
type secretFlags map[string][]byte

func (s secretFlags) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Values are secrets: never echoed, not even in usage errors.
	return strings.Join(keys, ",")
}

func (s secretFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		// The value may be a secret typed without its key: never echo it.
		return errors.New("want key=value")
	}
	s[k] = []byte(val)
	return nil
}

type options struct {
	source     string
	namespace  string
	name       string
	file       string
	url        string
	kubeconfig string
	provider   string
	secret     secretFlags
	now        string
	retryFor   time.Duration
	timeout    time.Duration
}

func main() {
	os.Exit(run())
}

func run() int {
	o := options{secret: secretFlags{}}
	fs := flag.NewFlagSet("sendevent", flag.ContinueOnError)
	fs.StringVar(&o.source, "source", "", "the CustomerSource to post to, as namespace/name (required)")
	fs.StringVar(&o.file, "file", "", "the provider's plaintext JSON payload; - reads standard input (required)")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:9292", "the webhook server's base URL")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig to read the CustomerSource and its Secret with (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&o.provider, "provider", "", "provider ("+providerNames()+"); with --secret, the cluster is not read")
	fs.Var(o.secret, "secret", "a Secret key as key=value (repeatable); overrides the cluster Secret's key of that name")
	fs.StringVar(&o.now, "now", "", "signing time, RFC 3339 or Unix seconds (default: now, fresh for each attempt)")
	fs.DurationVar(&o.retryFor, "retry-for", 0, "keep retrying for this long while the server is unreachable or answers 404, 429, 502, 503 or 504 (for scripts that start the server)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of one request")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "sendevent: %v\n", err)
		fs.Usage()
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := send(ctx, &o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sendevent: %v\n", err)
		return 1
	}
	if !ok {
		return 1
	}
	return 0
}

func (o *options) validate() error {
	ns, name, ok := strings.Cut(o.source, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("--source must be namespace/name, got %q", o.source)
	}
	o.namespace, o.name = ns, name
	if o.file == "" {
		return errors.New("--file is required")
	}
	if o.provider != "" {
		if _, ok := simulator(crmv1alpha1.Provider(o.provider)); !ok {
			return fmt.Errorf("--provider %q is not one of %s", o.provider, providerNames())
		}
	}
	if o.now != "" {
		if _, err := parseTime(o.now); err != nil {
			return err
		}
	}
	return nil
}

func parseTime(s string) (time.Time, error) {
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--now %q is neither RFC 3339 nor Unix seconds", s)
	}
	return t, nil
}

func send(ctx context.Context, o *options) (bool, error) {
	var payload []byte
	var err error
	if o.file == "-" {
		payload, err = io.ReadAll(os.Stdin)
	} else {
		payload, err = os.ReadFile(o.file)
	}
	if err != nil {
		return false, fmt.Errorf("reading the payload: %w", err)
	}

	provider := crmv1alpha1.Provider(o.provider)
	secret := map[string][]byte{}
	sim, _ := simulator(provider)
	if provider == "" || len(o.secret) == 0 {
		sim, provider, secret, err = fromCluster(ctx, o)
		if err != nil {
			return false, err
		}
	}
	for k, v := range o.secret {
		secret[k] = v
	}

	target := strings.TrimSuffix(o.url, "/") + "/hooks/" + o.namespace + "/" + o.name
	hc := &http.Client{Timeout: o.timeout}
	deadline := time.Now().Add(o.retryFor)
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		now := time.Now()
		if o.now != "" {
			now, _ = parseTime(o.now)
		}
		// Prepared again for every attempt: signed timestamps must be fresh.
		body, header, err := sim.Prepare(payload, secret, now)
		if err != nil {
			return false, fmt.Errorf("signing the payload as %s: %w", provider, err)
		}
		status, respBody, respHeader, err := post(ctx, hc, target, body, header)

		if retryable(status, err) && time.Now().Add(delay).Before(deadline) {
			wait := retryAfter(respHeader, delay)
			what := fmt.Sprint(err)
			if err == nil {
				what = fmt.Sprintf("%d %s %s", status, http.StatusText(status), strings.TrimSpace(string(respBody)))
			}
			fmt.Fprintf(os.Stderr, "sendevent: attempt %d: %s; retrying in %s\n", attempt, what, wait)
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(wait):
			}
			delay = min(delay*2, 5*time.Second)
			continue
		}
		if err != nil {
			return false, err
		}
		fmt.Printf("POST %s (%s)\n%d %s\n", target, provider, status, http.StatusText(status))
		if len(respBody) > 0 {
			fmt.Printf("%s\n", bytes.TrimRight(respBody, "\n"))
		}
		return status >= 200 && status < 300, nil
	}
}

// fromCluster reads the provider from the CustomerSource and the data of its
// Secret. A generic source's simulator signs as its spec.generic says.
func fromCluster(ctx context.Context, o *options) (providers.Simulator, crmv1alpha1.Provider, map[string][]byte, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, "", nil, fmt.Errorf("loading the kubeconfig (or pass --provider and --secret): %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", nil, fmt.Errorf("building the scheme: %w", err)
	}
	if err := crmv1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", nil, fmt.Errorf("building the scheme: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}

	var src crmv1alpha1.CustomerSource
	if err := c.Get(ctx, types.NamespacedName{Namespace: o.namespace, Name: o.name}, &src); err != nil {
		return nil, "", nil, fmt.Errorf("reading CustomerSource %s: %w", o.source, err)
	}
	provider := src.Spec.Provider
	if o.provider != "" {
		provider = crmv1alpha1.Provider(o.provider)
	}
	sim, ok := simulator(provider)
	if provider == src.Spec.Provider {
		bound, err := registry.ForSource(&src)
		if err != nil {
			return nil, "", nil, fmt.Errorf("CustomerSource %s: %w", o.source, err)
		}
		sim, ok = bound.(providers.Simulator)
	}
	if !ok {
		return nil, "", nil, fmt.Errorf("CustomerSource %s has provider %q, which has no simulator", o.source, provider)
	}
	var secret corev1.Secret
	key := types.NamespacedName{Namespace: o.namespace, Name: src.Spec.SecretRef.Name}
	if err := c.Get(ctx, key, &secret); err != nil {
		return nil, "", nil, fmt.Errorf("reading the Secret %s of CustomerSource %s: %w", key, o.source, err)
	}
	data := make(map[string][]byte, len(secret.Data))
	for k, v := range secret.Data {
		data[k] = v
	}
	return sim, provider, data, nil
}

func post(ctx context.Context, hc *http.Client, url string, body []byte, header http.Header) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("building the request to %s: %w", url, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("sending the event: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer of %s: %w", url, err)
	}
	return resp.StatusCode, respBody, resp.Header, nil
}

// retryable is true for answers that mean "not yet": the server is starting, the
// source's controller has not seen it or its Secret yet, or the server is throttling.
func retryable(status int, err error) bool {
	if err != nil {
		var netErr net.Error
		var opErr *net.OpError
		return errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout())
	}
	switch status {
	case http.StatusNotFound, http.StatusTooManyRequests, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func retryAfter(h http.Header, def time.Duration) time.Duration {
	if h != nil {
		if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
			return min(time.Duration(s)*time.Second, 10*time.Second)
		}
	}
	return def
}
