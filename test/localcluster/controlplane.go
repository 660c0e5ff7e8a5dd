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

// Package localcluster runs the operator as it runs in a cluster, on loopback: a
// real etcd and kube-apiserver from bin/k8s as processes the caller can freeze,
// stop and restart on the same port and data, the built manager binary as separate
// processes, a sink receiver that verifies signatures, and a provider simulator
// that posts signed webhooks. The end-to-end tests and hack/bench share it.
package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControlPlane is one etcd and one kube-apiserver, each a process of its own.
type ControlPlane struct {
	// BinDir holds etcd and kube-apiserver (bin/k8s).
	BinDir string
	// Dir holds the state (etcd data, certificates, kubeconfig) and the logs.
	Dir string
	// APIServerArgs are extra kube-apiserver flags, e.g. "--max-requests-inflight=800".
	APIServerArgs []string

	etcdURL   string
	apiPort   int
	pki       *pki
	etcd      *Process
	apiserver *Process
}

// Start starts etcd and the API server and waits until the API server is ready.
func (c *ControlPlane) Start(ctx context.Context) error {
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(c.BinDir, name)); err != nil {
			return fmt.Errorf("%s is missing in %s: run `make controlplane`", name, c.BinDir)
		}
	}
	for _, d := range []string{"etcd", "pki", "logs"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	var err error
	if c.pki, err = newPKI(); err != nil {
		return err
	}
	if err := c.pki.write(filepath.Join(c.Dir, "pki")); err != nil {
		return err
	}
	ports, err := FreePorts(3)
	if err != nil {
		return err
	}
	clientPort, peerPort := ports[0], ports[1]
	c.apiPort = ports[2]
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	c.etcd, err = StartProcess("etcd", c.LogPath("etcd"), nil, filepath.Join(c.BinDir, "etcd"),
		"--name=localcluster",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+c.etcdURL, "--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=localcluster="+peerURL,
		// The data is thrown away after the run; fsync would only measure the disk.
		"--unsafe-no-fsync=true",
		"--quota-backend-bytes="+strconv.Itoa(8<<30),
	)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, http.DefaultClient, c.etcdURL+"/health", c.etcd, time.Minute); err != nil {
		return fmt.Errorf("etcd: %w\n%s", err, c.etcd.Tail(20))
	}
	if err := c.StartAPIServer(ctx); err != nil {
		return err
	}
	return c.writeKubeconfig()
}

// LogPath is where the named process logs.
func (c *ControlPlane) LogPath(name string) string { return filepath.Join(c.Dir, "logs", name+".log") }

// EtcdURL is etcd's client URL (its /metrics tell the database size).
func (c *ControlPlane) EtcdURL() string { return c.etcdURL }

// APIServer is the running API server process, nil while it is stopped.
func (c *ControlPlane) APIServer() *Process { return c.apiserver }

// Etcd is the etcd process.
func (c *ControlPlane) Etcd() *Process { return c.etcd }

// StartAPIServer starts the API server on its port with its certificates; Start
// calls it, and it restarts the API server after StopAPIServer.
func (c *ControlPlane) StartAPIServer(ctx context.Context) error {
	pkiDir := filepath.Join(c.Dir, "pki")
	args := append([]string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		// No Endpoints for the default "kubernetes" Service: nothing in-cluster calls it,
		// and its reconciler refuses a loopback advertise address.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--cert-dir=" + pkiDir,
		"--tls-cert-file=" + filepath.Join(pkiDir, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(pkiDir, "apiserver.key"),
		"--client-ca-file=" + filepath.Join(pkiDir, "ca.crt"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--service-account-issuer=https://127.0.0.1:" + strconv.Itoa(c.apiPort),
		"--service-account-key-file=" + filepath.Join(pkiDir, "sa.key"),
		"--service-account-signing-key-file=" + filepath.Join(pkiDir, "sa.key"),
		// No controller-manager runs, so no default ServiceAccount would ever appear.
		"--disable-admission-plugins=ServiceAccount",
	}, c.APIServerArgs...)
	p, err := StartProcess("kube-apiserver", c.LogPath("kube-apiserver"), nil, filepath.Join(c.BinDir, "kube-apiserver"), args...)
	if err != nil {
		return err
	}
	c.apiserver = p
	if err := waitHTTP(ctx, c.httpClient(), c.URL()+"/readyz", p, 2*time.Minute); err != nil {
		return fmt.Errorf("kube-apiserver: %w\n%s", err, p.Tail(30))
	}
	return nil
}

// StopAPIServer stops the API server (SIGTERM, then SIGKILL after 30 s); etcd and
// its data stay.
func (c *ControlPlane) StopAPIServer() {
	if c.apiserver != nil {
		c.apiserver.Stop(30 * time.Second)
		c.apiserver = nil
	}
}

// Freeze stops the API server process with SIGSTOP: connections are accepted by
// the kernel and never answered, like a hung server.
func (c *ControlPlane) Freeze() error {
	if c.apiserver == nil {
		return errors.New("the API server is not running")
	}
	return c.apiserver.Signal(syscall.SIGSTOP)
}

// Thaw resumes a frozen API server with SIGCONT.
func (c *ControlPlane) Thaw() error {
	if c.apiserver == nil {
		return errors.New("the API server is not running")
	}
	return c.apiserver.Signal(syscall.SIGCONT)
}

// Stop stops the API server, then etcd.
func (c *ControlPlane) Stop() {
	c.StopAPIServer()
	if c.etcd != nil {
		c.etcd.Stop(30 * time.Second)
	}
}

// URL is the API server's address.
func (c *ControlPlane) URL() string { return "https://127.0.0.1:" + strconv.Itoa(c.apiPort) }

// Kubeconfig is the path of an admin kubeconfig.
func (c *ControlPlane) Kubeconfig() string { return filepath.Join(c.Dir, "kubeconfig") }

// RESTConfig is an admin client configuration, unthrottled: the callers generate
// load on purpose and measure it.
func (c *ControlPlane) RESTConfig() *rest.Config {
	cfg := &rest.Config{
		Host: c.URL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: c.pki.caPEM, CertData: c.pki.adminCertPEM, KeyData: c.pki.adminKeyPEM,
		},
		QPS: 5000, Burst: 5000,
	}
	return cfg
}

// InstallCRDs installs the CRDs of dir (config/crd/bases) and waits until they serve.
func (c *ControlPlane) InstallCRDs(dir string) error {
	if _, err := envtest.InstallCRDs(c.RESTConfig(), envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("installing the CRDs of %s: %w", dir, err)
	}
	return nil
}

func (c *ControlPlane) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: c.URL(), CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.pki.adminCertPEM, ClientKeyData: c.pki.adminKeyPEM}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "admin"}
	cfg.CurrentContext = "local"
	if err := clientcmd.WriteToFile(*cfg, c.Kubeconfig()); err != nil {
		return fmt.Errorf("writing the kubeconfig: %w", err)
	}
	return nil
}

func (c *ControlPlane) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.pki.caPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// waitHTTP polls url until it answers 200, p exits, or limit passes.
func waitHTTP(ctx context.Context, hc *http.Client, url string, p *Process, limit time.Duration) error {
	return PollHTTP(ctx, hc, url, limit, 200*time.Millisecond, func(code int) bool { return code == http.StatusOK }, func() error {
		if ok, exitErr := p.Exited(); ok {
			return fmt.Errorf("%s exited (%w) before %s answered", p.Name, exitErr, url)
		}
		return nil
	})
}

// PollHTTP GETs url with hc every interval until ready says its answer's
// status will do, stopped gives an error (its process is gone), ctx ends, or
// limit passes.
func PollHTTP(ctx context.Context, hc *http.Client, url string, limit, interval time.Duration, ready func(status int) bool, stopped func() error) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("building a request to %s: %w", url, err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if ready(resp.StatusCode) {
				return nil
			}
			last = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		} else {
			last = err
		}
		if err := stopped(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %w", url, limit, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
