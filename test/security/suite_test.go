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

// Package security_test checks the operator's identities against a real API server
// that authorises with RBAC: the RBAC of config/default (built with kustomize) is
// applied as it would be installed, and the manager binary runs as each
// ServiceAccount (impersonated), so a missing or excess permission shows as a
// refused request or a feature that does not work.
package security_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/test/localcluster"
)

// The names config/default installs (namePrefix customer-operator-).
const (
	systemNamespace  = "customer-operator-system"
	webhookSA        = "customer-operator-webhook-server"
	controllerSA     = "customer-operator-controller-manager"
	metricsReader    = "customer-operator-metrics-reader"
	managerRole      = "customer-operator-manager-role"
	webhookRole      = "customer-operator-webhook-server-role"
	testVersion      = "v9.8.7-test"
	testCommit       = "0123456789abcdef"
	eventuallyWithin = 60 * time.Second
)

var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8sClient  client.Client // the cluster admin
	scheme     = runtime.NewScheme()
	ctx        context.Context
	cancel     context.CancelFunc
	tmpDir     string
	managerBin string
)

func TestSecurity(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Security Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	SetDefaultEventuallyTimeout(eventuallyWithin)
	SetDefaultEventuallyPollingInterval(200 * time.Millisecond)
	ctx, cancel = context.WithCancel(context.Background())
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(crmv1alpha1.AddToScheme(scheme))

	var err error
	tmpDir, err = os.MkdirTemp("", "customer-operator-security-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, tmpDir)

	// The manager binary, as a release builds it: version and commit from -ldflags.
	managerBin = filepath.Join(tmpDir, "manager")
	build := exec.Command("go", "build", "-o", managerBin,
		"-ldflags", fmt.Sprintf("-X main.version=%s -X main.commit=%s", testVersion, testCommit), ".")
	build.Dir = filepath.Join("..", "..")
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build: %s", out)

	// envtest's kube-apiserver authorises with RBAC (--authorization-mode=RBAC is
	// its default); the admin user of cfg is in system:masters.
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if dir := filepath.Join("..", "..", "bin", "k8s"); dirExists(dir) {
			testEnv.BinaryAssetsDirectory = dir
		}
	}
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		cancel()
		Expect(testEnv.Stop()).To(Succeed())
	})
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	applyInstalledRBAC()
})

// applyInstalledRBAC builds config/default as `make deploy` does and creates its
// namespace, ServiceAccounts and RBAC objects, unchanged.
func applyInstalledRBAC() {
	GinkgoHelper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).
		Run(filesys.MakeFsOnDisk(), filepath.Join("..", "..", "config", "default"))
	Expect(err).NotTo(HaveOccurred())
	kinds := map[string]bool{"Namespace": true, "ServiceAccount": true, "ClusterRole": true,
		"ClusterRoleBinding": true, "Role": true, "RoleBinding": true}
	applied := map[string]bool{}
	// Namespaces first: the namespaced objects go into one.
	for _, wantNamespace := range []bool{true, false} {
		for _, r := range resources.Resources() {
			if !kinds[r.GetKind()] || (r.GetKind() == "Namespace") != wantNamespace {
				continue
			}
			m, err := r.Map()
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{Object: m}
			Expect(k8sClient.Create(ctx, u)).To(Succeed(), "%s %s", u.GetKind(), u.GetName())
			applied[u.GetKind()+"/"+u.GetName()] = true
		}
	}
	for _, name := range []string{
		"Namespace/" + systemNamespace,
		"ServiceAccount/" + webhookSA, "ServiceAccount/" + controllerSA,
		"ClusterRole/" + managerRole, "ClusterRole/" + webhookRole, "ClusterRole/" + metricsReader,
		"ClusterRole/customer-operator-metrics-auth-role",
		"ClusterRoleBinding/customer-operator-manager-rolebinding",
		"ClusterRoleBinding/customer-operator-webhook-server-rolebinding",
		"ClusterRoleBinding/customer-operator-metrics-auth-rolebinding",
	} {
		Expect(applied).To(HaveKey(name), "config/default installs %s", name)
	}
}

// serviceAccountUser is how the API server names a ServiceAccount's requests.
func serviceAccountUser(ns, name string) (string, []string) {
	return "system:serviceaccount:" + ns + ":" + name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
}

// asServiceAccount returns a rest.Config that acts as the ServiceAccount.
func asServiceAccount(ns, name string) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate.UserName, c.Impersonate.Groups = serviceAccountUser(ns, name)
	return c
}

// kubeconfigAs writes a kubeconfig that acts as the ServiceAccount, for the
// manager binary.
func kubeconfigAs(ns, name string) string {
	GinkgoHelper()
	user, groups := serviceAccountUser(ns, name)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData,
		Impersonate: user, ImpersonateGroups: groups,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(tmpDir, ns+"-"+name+".kubeconfig")
	Expect(clientcmd.WriteToFile(*kc, path)).To(Succeed())
	return path
}

// manager is the manager binary running as one identity.
type manager struct {
	metricsAddr, webhookAddr string
	out                      *syncBuffer
}

// startManager runs the manager binary with the kubeconfig and the flags, on free
// loopback ports, until the spec ends.
func startManager(kubeconfig string, args ...string) *manager {
	GinkgoHelper()
	addrs, err := localcluster.FreeAddrs(3)
	Expect(err).NotTo(HaveOccurred())
	m := &manager{metricsAddr: addrs[0], webhookAddr: addrs[1], out: &syncBuffer{}}
	args = append([]string{
		"--metrics-bind-address=" + m.metricsAddr,
		"--health-probe-bind-address=" + addrs[2],
		"--webhook-bind-address=" + m.webhookAddr,
	}, args...)
	cmd := exec.Command(managerBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout = m.out
	cmd.Stderr = m.out
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		GinkgoWriter.Printf("manager %v:\n%s\n", args, m.out.String())
	})
	return m
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// forbidden returns the lines of a manager's log in which the API server refused
// it something.
func forbidden(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "forbidden") {
			out = append(out, l)
		}
	}
	return out
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// bindInNamespace binds a ClusterRole to a ServiceAccount in one namespace only.
func bindInNamespace(ns, role, saNamespace, sa string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: objectMeta(ns, sa+"-"+role),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: saNamespace, Name: sa}},
	})).To(Succeed())
}
