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

// Command dev is the local development environment behind `make dev`: a real etcd and
// kube-apiserver (envtest, binaries from bin/k8s), the manager, the example
// CustomerSink receiver, the samples, and one webhook per provider, all on 127.0.0.1,
// with nothing installed but Go. Ctrl-C stops everything it started.
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
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/test/localcluster"
)

// The manager's addresses are fixed (not random) so that the URLs printed here, the
// README and the sample CustomerSink stay valid from one run to the next.
const (
	metricsAddr  = "127.0.0.1:8080"
	healthAddr   = "127.0.0.1:8081"
	webhookAddr  = "127.0.0.1:9292"
	receiverAddr = "127.0.0.1:9393"

	sampleNamespace = "default"
	// sampleSink is the CustomerSink of config/samples whose Secret the receiver verifies with.
	sampleSink = "example-receiver"
)

// sampleEvents is one provider payload per sample CustomerSource, posted once the
// webhook server answers, so webhook-made Customers show up next to the hand-written ones.
var sampleEvents = []struct{ source, file string }{
	{"phasio", "config/samples/events/phasio/customer-organisation-created.json"},
	{"smarterpay", "config/samples/events/smarterpay/customer-account-inserted.json"},
	{"gettrx", "config/samples/events/gettrx/customer-created.json"},
	{"payway", "config/samples/events/payway/account-changed-webhook.json"},
}

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("dev", flag.ExitOnError)
	binDir := fs.String("k8s-bin-dir", envOr("K8S_BIN_DIR", "bin/k8s"), "directory with kube-apiserver, etcd and kubectl (env K8S_BIN_DIR)")
	noManager := fs.Bool("no-manager", false, "do not build and run the manager; run it yourself (IDE, debugger) with KUBECONFIG=.dev/kubeconfig")
	noEvents := fs.Bool("no-events", false, "do not post the sample provider events")
	reset := fs.Bool("reset", false, "delete the etcd data in .dev/etcd first, starting from an empty cluster")
	withPostgres := fs.Bool("postgres", false, "also run PostgreSQL (installed locally) on "+postgresAddr+" with data in .dev/postgres, and add the sample PostgreSQL sink writing to it")
	_ = fs.Parse(os.Args[1:])

	// envtest logs through controller-runtime; the control plane's own output goes to
	// .dev/logs, so its log lines would only repeat what this program reports.
	ctrllog.SetLogger(logr.Discard())

	out := &console{w: os.Stdout}
	d := &devEnv{out: out, log: out.prefixed("dev"), exited: make(chan *child, 8)}
	if err := d.init(*binDir); err != nil {
		fmt.Fprintf(os.Stderr, "dev: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	err := d.start(ctx, startOptions{manager: !*noManager, events: !*noEvents, reset: *reset, postgres: *withPostgres})
	if err == nil {
		err = d.wait(ctx)
	}
	// A second Ctrl-C during the shutdown is not needed: every stop below is bounded.
	stop()
	d.stopAll()
	if err != nil && !errors.Is(err, context.Canceled) {
		d.logf("error: %v", err)
		return 1
	}
	d.logf("stopped")
	return 0
}

type startOptions struct {
	manager  bool
	events   bool
	reset    bool
	postgres bool
}

// devEnv holds everything the environment started, so that stopAll can undo it
// whatever step the start got to.
type devEnv struct {
	root       string // repository root; every path below is absolute
	binDir     string
	stateDir   string // .dev
	kubeconfig string

	out *console
	log io.Writer

	env      *envtest.Environment
	envUp    bool
	k8s      client.Client
	children []*child
	exited   chan *child
}

func (d *devEnv) init(binDir string) error {
	root, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("finding the working directory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return fmt.Errorf("run from the repository root (no go.mod in %s)", root)
	}
	d.root = root
	d.binDir = d.abs(binDir)
	d.stateDir = d.abs(".dev")
	d.kubeconfig = filepath.Join(d.stateDir, "kubeconfig")
	for _, name := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(d.binDir, name)); err != nil {
			return fmt.Errorf("%s is missing in %s: run `make controlplane` (or `make dev`, which builds it)", name, d.binDir)
		}
	}
	for _, dir := range []string{"logs", "bin"} {
		if err := os.MkdirAll(filepath.Join(d.stateDir, dir), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	return nil
}

func (d *devEnv) abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.root, p)
}

func (d *devEnv) logf(format string, args ...any) {
	fmt.Fprintf(d.log, format+"\n", args...)
}

func (d *devEnv) start(ctx context.Context, opts startOptions) error {
	// A run that was killed (SIGKILL, closed terminal) leaves its processes behind,
	// holding the etcd data directory and the fixed ports.
	d.stopStale()
	ports := []string{receiverAddr}
	if opts.manager {
		ports = append(ports, metricsAddr, healthAddr, webhookAddr)
	}
	for _, addr := range ports {
		if err := checkFree(addr); err != nil {
			return err
		}
	}

	// The builds overlap with the control plane's start, which mostly waits on etcd.
	buildCtx, cancelBuilds := context.WithCancel(ctx)
	defer cancelBuilds()
	builds := make(chan error, 1)
	go func() { builds <- d.buildBinaries(buildCtx, opts.manager) }()
	// abort stops the builds, so that a failed start does not wait for them.
	abort := func(err error) error {
		cancelBuilds()
		<-builds //nolint:errcheck // cancelled just above: the start's error is the one to report
		return err
	}

	if opts.reset {
		d.logf("--reset: removing %s", filepath.Join(d.stateDir, "etcd"))
		if err := os.RemoveAll(filepath.Join(d.stateDir, "etcd")); err != nil {
			return abort(fmt.Errorf("removing the etcd data: %w", err))
		}
	}
	if err := d.startControlPlane(); err != nil {
		return abort(err)
	}
	if err := ctx.Err(); err != nil {
		return abort(err)
	}

	if err := d.run(ctx, "kubectl", d.kubectl("apply", "-k", d.abs("config/samples"))); err != nil {
		return abort(fmt.Errorf("applying config/samples: %w", err))
	}
	receiverSecret, err := d.sinkSecret(ctx)
	if err != nil {
		return abort(err)
	}

	if err := <-builds; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	if opts.postgres {
		// Before the manager, so that it is stopped after it.
		if err := d.startPostgres(ctx); err != nil {
			return err
		}
	}
	if err := d.startChild("receiver", []string{"WEBHOOK_SECRET=" + receiverSecret},
		filepath.Join(d.stateDir, "bin", "receiver"), "--addr="+receiverAddr); err != nil {
		return err
	}
	if opts.manager {
		if err := d.startChild("manager", []string{"KUBECONFIG=" + d.kubeconfig}, d.abs("bin/manager"),
			"--mode=all",
			// Plain HTTP on loopback for local use: curl 127.0.0.1:8080/metrics.
			"--metrics-bind-address="+metricsAddr,
			"--metrics-secure=false",
			"--health-probe-bind-address="+healthAddr,
			"--webhook-bind-address="+webhookAddr,
			// The example receiver listens on loopback, which sinks may not reach by default.
			"--sink-allow-cidrs=127.0.0.0/8",
		); err != nil {
			return err
		}
	}
	d.writePIDs()

	if opts.manager && opts.events {
		if err := d.postSampleEvents(ctx); err != nil {
			return err
		}
	}
	// Shown once, after the events, so the webhook-made Customers are in the list.
	_ = d.run(ctx, "kubectl", d.kubectl("get", "customersources,customersinks,customers", "-n", sampleNamespace))
	d.printUsage(opts.manager, opts.postgres)
	return nil
}

func (d *devEnv) buildBinaries(ctx context.Context, manager bool) error {
	if manager {
		d.logf("building bin/manager")
		if err := d.run(ctx, "go build", []string{"go", "build", "-o", d.abs("bin/manager"), "."}); err != nil {
			return fmt.Errorf("building the manager (use --no-manager to run without it): %w", err)
		}
	}
	// Built, not `go run`, so that the process we signal is the program itself.
	if err := d.run(ctx, "go build", []string{"go", "build", "-o", filepath.Join(d.stateDir, "bin") + string(filepath.Separator),
		"./hack/receiver", "./hack/sendevent"}); err != nil {
		return fmt.Errorf("building the receiver and sendevent: %w", err)
	}
	return nil
}

func (d *devEnv) startControlPlane() error {
	// envtest finds its binaries through KUBEBUILDER_ASSETS, as the tests do.
	if err := os.Setenv("KUBEBUILDER_ASSETS", d.binDir); err != nil {
		return fmt.Errorf("setting KUBEBUILDER_ASSETS: %w", err)
	}
	etcdLog, err := os.Create(filepath.Join(d.stateDir, "logs", "etcd.log"))
	if err != nil {
		return fmt.Errorf("creating the etcd log: %w", err)
	}
	apiLog, err := os.Create(filepath.Join(d.stateDir, "logs", "kube-apiserver.log"))
	if err != nil {
		return fmt.Errorf("creating the kube-apiserver log: %w", err)
	}

	etcd := &envtest.Etcd{DataDir: filepath.Join(d.stateDir, "etcd"), Out: etcdLog, Err: etcdLog}
	// envtest turns fsync off because its data is thrown away; this data is kept
	// across runs, so it has to survive a crash.
	etcd.Configure().Set("unsafe-no-fsync", "false")
	d.env = &envtest.Environment{
		BinaryAssetsDirectory: d.binDir,
		CRDDirectoryPaths:     []string{d.abs("config/crd/bases")},
		ErrorIfCRDPathMissing: true,
		ControlPlane: envtest.ControlPlane{
			Etcd:      etcd,
			APIServer: &envtest.APIServer{Out: apiLog, Err: apiLog},
		},
		// A shared 2-core machine, or an etcd replaying a large data directory, is
		// slower than the 20 s envtest allows by default.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}

	d.logf("starting etcd and kube-apiserver from %s (data in .dev/etcd, logs in .dev/logs)", d.binDir)
	started := time.Now()
	if _, err := d.env.Start(); err != nil {
		// envtest stops what it started when Start fails, but not always everything.
		_ = d.env.Stop()
		return fmt.Errorf("starting the control plane (see .dev/logs/etcd.log and .dev/logs/kube-apiserver.log; --reset starts from an empty etcd): %w", err)
	}
	d.envUp = true
	// The control plane's processes are written down now, so a killed run can be
	// cleaned up even if the manager never starts.
	d.writePIDs()

	admin, err := d.env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("provisioning the admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering the admin kubeconfig: %w", err)
	}
	if err := os.WriteFile(d.kubeconfig, kubeconfig, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", d.kubeconfig, err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building the scheme: %w", err)
	}
	if err := crmv1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("building the scheme: %w", err)
	}
	d.k8s, err = client.New(admin.Config(), client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating a client: %w", err)
	}
	d.logf("control plane up in %s at %s; admin kubeconfig in .dev/kubeconfig",
		time.Since(started).Round(100*time.Millisecond), admin.Config().Host)
	return nil
}

// sinkSecret reads the sample sink's signing secret from the cluster rather than from
// a copy here, so the receiver always verifies with what the manager signs with.
func (d *devEnv) sinkSecret(ctx context.Context) (string, error) {
	var sink crmv1alpha1.CustomerSink
	if err := d.k8s.Get(ctx, types.NamespacedName{Namespace: sampleNamespace, Name: sampleSink}, &sink); err != nil {
		return "", fmt.Errorf("reading the sample CustomerSink %s/%s: %w", sampleNamespace, sampleSink, err)
	}
	if sink.Spec.SecretRef == nil {
		return "", fmt.Errorf("the sample CustomerSink %s/%s has no secretRef", sampleNamespace, sampleSink)
	}
	var secret corev1.Secret
	key := types.NamespacedName{Namespace: sampleNamespace, Name: sink.Spec.SecretRef.Name}
	if err := d.k8s.Get(ctx, key, &secret); err != nil {
		return "", fmt.Errorf("reading the sample sink's Secret %s: %w", key, err)
	}
	value := string(secret.Data["secret"])
	if value == "" {
		return "", fmt.Errorf("the sample sink's Secret %s has no key \"secret\"", key)
	}
	return value, nil
}

func (d *devEnv) postSampleEvents(ctx context.Context) error {
	d.logf("waiting for the webhook server on %s", webhookAddr)
	if err := d.waitForHTTP(ctx, "http://"+webhookAddr+"/", 3*time.Minute); err != nil {
		return err
	}
	for _, ev := range sampleEvents {
		args := []string{filepath.Join(d.stateDir, "bin", "sendevent"),
			"--kubeconfig", d.kubeconfig,
			"--source", sampleNamespace + "/" + ev.source,
			"--file", d.abs(ev.file),
			"--url", "http://" + webhookAddr,
			// The source answers 503 until its controller has seen the Secret.
			"--retry-for", "2m",
		}
		if err := d.run(ctx, "sendevent", args); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A failed sample event is worth a look, not worth stopping the environment.
			d.logf("posting %s to %s/%s failed: %v", ev.file, sampleNamespace, ev.source, err)
		}
	}
	return nil
}

// waitForHTTP waits until url answers at all: any status means the server is serving.
func (d *devEnv) waitForHTTP(ctx context.Context, url string, limit time.Duration) error {
	return localcluster.PollHTTP(ctx, &http.Client{Timeout: 2 * time.Second}, url, limit, 500*time.Millisecond,
		func(int) bool { return true },
		func() error {
			select {
			case c := <-d.exited:
				return fmt.Errorf("%s exited before %s answered", c.name, url)
			default:
				return nil
			}
		})
}

func (d *devEnv) kubectl(args ...string) []string {
	return append([]string{filepath.Join(d.binDir, "kubectl"), "--kubeconfig", d.kubeconfig}, args...)
}

// run runs a short-lived command to completion, its output prefixed.
func (d *devEnv) run(ctx context.Context, name string, argv []string) error {
	w := d.out.prefixed(name)
	defer w.flush()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = d.root
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

// child is a long-running process of the environment (manager, receiver).
type child struct {
	name string
	cmd  *exec.Cmd
	out  *lineWriter
	done chan struct{}
	err  error
}

func (d *devEnv) startChild(name string, env []string, path string, args ...string) error {
	return d.startChildAs(name, nil, env, path, args...)
}

// startChildAs starts a child as another user when cred is set (PostgreSQL
// refuses to run as root).
func (d *devEnv) startChildAs(name string, cred *syscall.Credential, env []string, path string, args ...string) error {
	w := d.out.prefixed(name)
	cmd := exec.Command(path, args...)
	cmd.Dir = d.root
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group: a Ctrl-C in the terminal reaches only this program, which
	// then stops the children in order (manager before the API server it talks to).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, out: w, done: make(chan struct{})}
	d.children = append(d.children, c)
	go func() {
		c.err = cmd.Wait()
		w.flush()
		close(c.done)
		d.exited <- c
	}()
	d.logf("started %s (pid %d)", name, cmd.Process.Pid)
	return nil
}

// wait blocks until a signal arrives or a child exits on its own.
func (d *devEnv) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case c := <-d.exited:
		if c.err == nil {
			// Stopped on its own with status 0, e.g. a SIGINT sent to it alone.
			return fmt.Errorf("%s exited unexpectedly, with status 0", c.name)
		}
		return fmt.Errorf("%s exited unexpectedly: %w", c.name, c.err)
	}
}

// stopAll stops the children in reverse start order, then the API server and etcd.
func (d *devEnv) stopAll() {
	for i := len(d.children) - 1; i >= 0; i-- {
		c := d.children[i]
		select {
		case <-c.done:
			continue
		default:
		}
		d.logf("stopping %s", c.name)
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(20 * time.Second):
			d.logf("%s did not stop within 20s; killing it", c.name)
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.done
		}
	}
	if d.envUp {
		d.logf("stopping kube-apiserver and etcd")
		if err := d.env.Stop(); err != nil {
			d.logf("stopping the control plane: %v", err)
		}
	}
	_ = os.Remove(d.pidFile())
}

func (d *devEnv) printUsage(manager, postgres bool) {
	rel := func(p string) string {
		if r, err := filepath.Rel(d.root, p); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
		return p
	}
	kubectl := rel(filepath.Join(d.binDir, "kubectl")) + " --kubeconfig .dev/kubeconfig"
	var b strings.Builder
	fmt.Fprintf(&b, "\n")
	fmt.Fprintf(&b, "The customer-operator dev environment is up. Ctrl-C stops all of it (state in .dev/etcd is kept; --reset starts empty).\n\n")
	fmt.Fprintf(&b, "  %s get customers\n", kubectl)
	fmt.Fprintf(&b, "  %s get customersources,customersinks\n", kubectl)
	fmt.Fprintf(&b, "  %s get customers -o yaml    # status: conditions, lastEvent, sinks\n", kubectl)
	fmt.Fprintf(&b, "  %s explain customer.spec\n", kubectl)
	fmt.Fprintf(&b, "  export KUBECONFIG=$PWD/.dev/kubeconfig    # for other tools\n\n")
	if manager {
		fmt.Fprintf(&b, "Send a provider webhook, signed with the source's Secret (see config/samples/events/):\n")
		fmt.Fprintf(&b, "  go run ./hack/sendevent --kubeconfig .dev/kubeconfig --source default/gettrx --file config/samples/events/gettrx/customer-updated.json\n\n")
		fmt.Fprintf(&b, "  webhook server  http://%s/hooks/{namespace}/{source}\n", webhookAddr)
		fmt.Fprintf(&b, "  metrics         http://%s/metrics\n", metricsAddr)
		fmt.Fprintf(&b, "  health          http://%s/healthz  http://%s/readyz\n", healthAddr, healthAddr)
	} else {
		fmt.Fprintf(&b, "Run the manager yourself:\n")
		fmt.Fprintf(&b, "  KUBECONFIG=.dev/kubeconfig go run . --mode=all --metrics-bind-address=%s --metrics-secure=false --health-probe-bind-address=%s --webhook-bind-address=%s --sink-allow-cidrs=127.0.0.0/8\n\n",
			metricsAddr, healthAddr, webhookAddr)
	}
	fmt.Fprintf(&b, "  sink receiver   http://%s/  (its log lines start with [receiver])\n", receiverAddr)
	if postgres {
		fmt.Fprintf(&b, "  PostgreSQL sink the table the sink example-warehouse keeps, data in .dev/postgres:\n    %s\n", psqlCommand())
	}
	fmt.Fprintf(&b, "  control plane   logs in .dev/logs/\n\n")
	d.out.write([]byte(b.String()))
}

// pidFile lists the processes of the running environment, with their start times
// so that a recycled pid is never mistaken for one of them.
func (d *devEnv) pidFile() string { return filepath.Join(d.stateDir, "pids") }

func (d *devEnv) writePIDs() {
	var b strings.Builder
	// envtest does not expose its processes; they are the children of this one that
	// lead their own process group (short-lived commands such as go build do not).
	for _, pid := range childGroupLeaders(os.Getpid()) {
		if st, ok := startTime(pid); ok {
			fmt.Fprintf(&b, "%d %s\n", pid, st)
		}
	}
	if err := os.WriteFile(d.pidFile(), []byte(b.String()), 0o644); err != nil {
		d.logf("writing %s: %v", d.pidFile(), err)
	}
}

// stopStale stops the processes a previous run left behind. Only processes in the
// pid file whose start time still matches are touched: they are ours.
func (d *devEnv) stopStale() {
	data, err := os.ReadFile(d.pidFile())
	if err != nil {
		return
	}
	var stale []int
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid <= 1 {
			continue
		}
		if st, ok := startTime(pid); ok && st == f[1] {
			stale = append(stale, pid)
		}
	}
	for _, pid := range stale {
		d.logf("stopping pid %d left behind by a previous run", pid)
		// Every child was started in its own process group (envtest does the same).
		_ = syscall.Kill(-pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, pid := range stale {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if alive(pid) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	_ = os.Remove(d.pidFile())
}

func alive(pid int) bool {
	_, ok := startTime(pid)
	return ok
}

// startTime is field 22 of /proc/{pid}/stat. Where there is no /proc (macOS), stale
// processes are not detected and the port check below reports them instead.
func startTime(pid int) (string, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", false
	}
	// The command name (field 2) may hold spaces; the fields after it do not.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); a zombie has exited already.
	if len(f) < 20 || f[0] == "Z" {
		return "", false
	}
	return f[19], true
}

func childGroupLeaders(parent int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		// After the command name: state, ppid, pgrp.
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 2 && f[1] == strconv.Itoa(parent) && f[2] == e.Name() {
			pids = append(pids, pid)
		}
	}
	return pids
}

func checkFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s is in use (another `make dev`, or another program); free it first: %w", addr, err)
	}
	return l.Close()
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// console serialises whole lines from every child onto one stream.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *console) write(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, _ = c.w.Write(p)
}

func (c *console) prefixed(name string) *lineWriter {
	return &lineWriter{c: c, prefix: fmt.Sprintf("%-11s ", "["+name+"]")}
}

// lineWriter prefixes every line; a partial line waits for its end (or flush), so
// lines of different children never interleave.
type lineWriter struct {
	mu     sync.Mutex
	c      *console
	prefix string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.c.write(append([]byte(w.prefix), w.buf[:i+1]...))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.c.write(append(append([]byte(w.prefix), w.buf...), '\n'))
		w.buf = nil
	}
}
