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

package manifests

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// apply applies objs to the API server as `kubectl apply --server-side` does: CRDs
// and Namespaces first, then the rest once the server serves the new kinds. Every
// object must be accepted.
func apply(t *testing.T, source string, objs []*unstructured.Unstructured) {
	t.Helper()
	c := apiServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := func(u *unstructured.Unstructured) bool {
		return u.GetKind() == "CustomResourceDefinition" || u.GetKind() == "Namespace"
	}
	owner := client.FieldOwner("test-" + strings.ReplaceAll(source, "/", "-"))
	for _, pass := range []bool{true, false} {
		for _, u := range objs {
			if first(u) != pass {
				continue
			}
			var err error
			// A kind whose CRD was applied just now is served a moment later.
			for {
				err = c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), owner, client.ForceOwnership)
				if !meta.IsNoMatchError(err) || ctx.Err() != nil {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("%s: the API server refused %s %s/%s: %v", source, u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	}
}

func ensureNamespaces(t *testing.T, names ...string) {
	t.Helper()
	c := apiServer(t)
	for _, n := range names {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}
		err := c.Create(context.Background(), ns)
		if client.IgnoreAlreadyExists(err) != nil {
			t.Fatalf("creating namespace %s: %v", n, err)
		}
	}
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	n := map[string]int{}
	for _, u := range objs {
		n[u.GetKind()]++
	}
	return n
}

func find(objs []*unstructured.Unstructured, kind, nameSuffix string) []*unstructured.Unstructured {
	var found []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == kind && strings.HasSuffix(u.GetName(), nameSuffix) {
			found = append(found, u)
		}
	}
	return found
}

// TestInstaller applies dist/install.yaml, which `kubectl apply -f` users install.
func TestInstaller(t *testing.T) {
	objs := readObjects(t, "dist/install.yaml")
	have := kinds(objs)
	for kind, atLeast := range map[string]int{
		"CustomResourceDefinition": 3, "Namespace": 1, "ServiceAccount": 2,
		"ClusterRole": 1, "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1,
		"Deployment": 2, "Service": 2, "PodDisruptionBudget": 1, "NetworkPolicy": 2,
	} {
		if have[kind] < atLeast {
			t.Errorf("dist/install.yaml has %d %s, want at least %d", have[kind], kind, atLeast)
		}
	}
	for _, d := range find(objs, "Deployment", "") {
		if d.GetNamespace() != "customer-operator-system" {
			t.Errorf("Deployment %s is in namespace %q, want customer-operator-system", d.GetName(), d.GetNamespace())
		}
	}
	apply(t, "dist/install.yaml", objs)
}

// TestChartDefaults applies the chart rendered with its default values.
func TestChartDefaults(t *testing.T) {
	objs := readObjects(t, "bin/chart/default.yaml")
	ensureNamespaces(t, "chart-default")
	have := kinds(objs)
	for kind, want := range map[string]int{
		"CustomResourceDefinition": 3, "ServiceAccount": 2, "Deployment": 2,
		"ClusterRole": 6, "PodDisruptionBudget": 1, "NetworkPolicy": 2,
		"Ingress": 0, "ServiceMonitor": 0, "PrometheusRule": 0, "ConfigMap": 0, "Role": 1,
	} {
		if have[kind] != want {
			t.Errorf("the default chart has %d %s, want %d", have[kind], kind, want)
		}
	}
	apply(t, "chart/default", objs)
}

// TestChartEverything applies the chart with every option on
// (hack/chart-values-all.yaml): namespaced RBAC, the sink policy, the controllers'
// egress NetworkPolicy, the Ingress and the monitoring objects (with minimal Prometheus Operator CRDs, see testdata).
func TestChartEverything(t *testing.T) {
	apply(t, "testdata/monitoring-crds.yaml", readObjects(t, "test/manifests/testdata/monitoring-crds.yaml"))
	objs := readObjects(t, "bin/chart/all.yaml")
	ensureNamespaces(t, "chart-all", "team-a", "team-b", "monitoring")

	// Namespaced Roles in each watched namespace, and no cluster-wide access to the
	// operator's API or to Secrets.
	for _, role := range []string{"-manager-role", "-webhook-server-role"} {
		var in []string
		for _, r := range find(objs, "Role", role) {
			in = append(in, r.GetNamespace())
		}
		sort.Strings(in)
		if !slices.Equal(in, []string{"team-a", "team-b"}) {
			t.Errorf("Roles *%s are in %v, want [team-a team-b]", role, in)
		}
		if n := len(find(objs, "ClusterRole", role)); n != 0 {
			t.Errorf("with watchNamespaces the chart still renders ClusterRole *%s", role)
		}
	}
	// What the operator's identities are bound to cluster-wide (the roles for people
	// are not bound by the chart).
	for _, crb := range find(objs, "ClusterRoleBinding", "") {
		var b rbacv1.ClusterRoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(crb.Object, &b); err != nil {
			t.Fatal(err)
		}
		for _, cr := range find(objs, "ClusterRole", b.RoleRef.Name) {
			for _, rule := range rulesOf(t, cr) {
				if slices.Contains(rule.Resources, "secrets") || slices.Contains(rule.APIGroups, "crm.customer-operator.io") {
					t.Errorf("with watchNamespaces, %s binds ClusterRole %s, which grants %v on %v cluster-wide", b.Name, cr.GetName(), rule.Verbs, rule.Resources)
				}
			}
		}
	}

	args := map[string][]string{}
	for _, d := range find(objs, "Deployment", "") {
		c, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		a, _, _ := unstructured.NestedStringSlice(c[0].(map[string]any), "args")
		args[strings.TrimPrefix(d.GetName(), "chart-all-customer-operator-")] = a
		if img, _, _ := unstructured.NestedString(c[0].(map[string]any), "image"); img != "registry.example.com/customer-operator:v0.1.0" {
			t.Errorf("Deployment %s runs image %q, want registry.example.com/customer-operator:v0.1.0", d.GetName(), img)
		}
	}
	for _, want := range []string{"--watch-namespaces=team-a,team-b", "--sink-deny-cidrs=169.254.0.0/16,10.0.0.0/8", "--sink-allow-cidrs=192.0.2.0/24",
		"--max-deliveries-in-flight=32", "--max-deliveries-in-flight-per-namespace=8",
		"--sink-max-connections=128", "--sink-max-connections-per-namespace=16",
		"--zap-log-level=debug", "--leader-election-lease-duration=60s"} {
		if !slices.Contains(args["controller-manager"], want) {
			t.Errorf("controller-manager args %q lack %s", args["controller-manager"], want)
		}
	}
	// extraArgs come after the chart's own flags, so a repeated flag is theirs.
	if a := args["controller-manager"]; len(a) < 2 || a[len(a)-1] != "--leader-election-lease-duration=60s" {
		t.Errorf("controller-manager args %q do not end with its extraArgs", a)
	}
	for _, want := range []string{"--watch-namespaces=team-a,team-b", "--webhook-trusted-proxies=10.244.0.0/16,fd00:10:244::/56", "--webhook-max-events-per-request=50"} {
		if !slices.Contains(args["webhook-server"], want) {
			t.Errorf("webhook-server args %q lack %s", args["webhook-server"], want)
		}
	}
	for _, d := range find(objs, "Deployment", "") {
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Object, &dep); err != nil {
			t.Fatal(err)
		}
		pod := dep.Spec.Template.Spec
		if pod.PriorityClassName != "system-cluster-critical" {
			t.Errorf("Deployment %s: priorityClassName %q, want system-cluster-critical", d.GetName(), pod.PriorityClassName)
		}
		// OpenShift's security contexts: the UID and group are left to the platform.
		if sc := pod.SecurityContext; sc == nil || sc.RunAsUser != nil || sc.RunAsGroup != nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("Deployment %s: pod securityContext %+v, want runAsNonRoot without runAsUser and runAsGroup", d.GetName(), sc)
		}
		env := map[string]string{}
		for _, e := range pod.Containers[0].Env {
			env[e.Name] = e.Value
		}
		want := map[string]string{"GODEBUG": "http2server=0"}
		if dep.Labels["control-plane"] == "controller-manager" {
			want = map[string]string{"HTTPS_PROXY": "http://proxy.example.com:3128", "NO_PROXY": ".svc,.cluster.local,10.0.0.0/8"}
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("Deployment %s: env %s=%q, want %q (extraEnv)", d.GetName(), k, env[k], v)
			}
		}
		if _, ok := env["GOMEMLIMIT"]; !ok {
			t.Errorf("Deployment %s: extraEnv replaced the chart's GOMEMLIMIT", d.GetName())
		}
	}

	// The ServiceMonitor sends the scraper's token from a Secret; the scraper, and
	// the named Prometheus ServiceAccount, may get /metrics.
	if sm := find(objs, "ServiceMonitor", ""); len(sm) == 1 {
		eps, _, _ := unstructured.NestedSlice(sm[0].Object, "spec", "endpoints")
		ep := eps[0].(map[string]any)
		if _, deprecated := ep["bearerTokenFile"]; deprecated {
			t.Errorf("ServiceMonitor uses the deprecated bearerTokenFile")
		}
		secret, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
		if secret != "chart-all-customer-operator-metrics-scraper-token" {
			t.Errorf("ServiceMonitor authorization credentials from Secret %q, want chart-all-customer-operator-metrics-scraper-token", secret)
		}
		if s := find(objs, "Secret", "-metrics-scraper-token"); len(s) != 1 || s[0].Object["type"] != "kubernetes.io/service-account-token" {
			t.Errorf("no service-account-token Secret for the scraper: %v", s)
		}
	}
	readers := map[string]bool{}
	for _, crb := range find(objs, "ClusterRoleBinding", "") {
		var b rbacv1.ClusterRoleBinding
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(crb.Object, &b); err != nil {
			t.Fatal(err)
		}
		if b.RoleRef.Name == "chart-all-customer-operator-metrics-reader" {
			for _, s := range b.Subjects {
				readers[s.Namespace+"/"+s.Name] = true
			}
		}
	}
	for _, sa := range []string{"chart-all/chart-all-customer-operator-metrics-scraper", "monitoring/prometheus-k8s"} {
		if !readers[sa] {
			t.Errorf("ServiceAccount %s is not bound to metrics-reader (bound: %v)", sa, readers)
		}
	}

	if d := find(objs, "Deployment", "-webhook-server"); len(d) != 1 {
		t.Errorf("%d webhook-server Deployments, want 1", len(d))
	} else if r, _, _ := unstructured.NestedFieldNoCopy(d[0].Object, "spec", "replicas"); fmt.Sprint(r) != "3" {
		t.Errorf("webhook-server replicas = %v, want 3", r)
	}

	// The controllers' egress: DNS, the API server and the sinks' public ranges,
	// every rule naming where it goes (a rule without "to" would allow anywhere).
	if np := find(objs, "NetworkPolicy", "-controller-manager-egress"); len(np) != 1 {
		t.Errorf("%d egress NetworkPolicies for the controllers, want 1", len(np))
	} else {
		var p networkingv1.NetworkPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(np[0].Object, &p); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) ||
			p.Spec.PodSelector.MatchLabels["control-plane"] != "controller-manager" {
			t.Errorf("egress NetworkPolicy: types %v, pods %v; want Egress of the controller-manager", p.Spec.PolicyTypes, p.Spec.PodSelector.MatchLabels)
		}
		var blocks []string
		for i, rule := range p.Spec.Egress {
			if len(rule.To) == 0 {
				t.Errorf("egress rule %d allows every destination", i)
			}
			for _, to := range rule.To {
				if to.IPBlock != nil {
					blocks = append(blocks, to.IPBlock.CIDR)
				}
			}
		}
		if want := []string{"192.0.2.10/32", "2001:db8::10/128", "0.0.0.0/0", "::/0"}; !slices.Equal(blocks, want) {
			t.Errorf("egress NetworkPolicy reaches %v, want %v", blocks, want)
		}
	}

	if ing := find(objs, "Ingress", ""); len(ing) != 1 {
		t.Errorf("%d Ingresses, want 1", len(ing))
	} else {
		rules, _, _ := unstructured.NestedSlice(ing[0].Object, "spec", "rules")
		if len(rules) != 1 || rules[0].(map[string]any)["host"] != "webhooks.example.com" {
			t.Errorf("Ingress rules = %v, want one for webhooks.example.com", rules)
		}
		tls, _, _ := unstructured.NestedSlice(ing[0].Object, "spec", "tls")
		if len(tls) != 1 || tls[0].(map[string]any)["secretName"] != "webhooks-tls" {
			t.Errorf("Ingress tls = %v, want the Secret webhooks-tls", tls)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if n := len(find(objs, kind, "")); n != 1 {
			t.Errorf("%d %s, want 1", n, kind)
		}
	}
	if cm := find(objs, "ConfigMap", "-dashboard"); len(cm) != 1 {
		t.Errorf("%d dashboard ConfigMaps, want 1", len(cm))
	} else if cm[0].GetNamespace() != "monitoring" || cm[0].GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap in %q with labels %v, want namespace monitoring and grafana_dashboard=1", cm[0].GetNamespace(), cm[0].GetLabels())
	}

	apply(t, "chart/all", objs)
}

// TestChartRBACMatchesConfig keeps the chart's roles in step with config/rbac (the
// manager's rules are generated there from the RBAC markers): a ClusterRole of the
// installer and the chart's ClusterRole of the same name must grant the same.
func TestChartRBACMatchesConfig(t *testing.T) {
	installer := readObjects(t, "dist/install.yaml")
	chart := readObjects(t, "bin/chart/default.yaml")
	compared := 0
	for _, role := range []string{"-manager-role", "-webhook-server-role"} {
		fromConfig := find(installer, "ClusterRole", "customer-operator"+role)
		fromChart := find(chart, "ClusterRole", "chart-default-customer-operator"+role)
		if len(fromChart) != 1 {
			t.Errorf("the chart has %d ClusterRoles *%s, want 1", len(fromChart), role)
			continue
		}
		if len(fromConfig) == 0 {
			// The installer splits the webhook server's role out of manager-role
			// only once config/rbac does.
			continue
		}
		compared++
		want, got := grants(rulesOf(t, fromConfig[0])), grants(rulesOf(t, fromChart[0]))
		if !slices.Equal(want, got) {
			t.Errorf("ClusterRole *%s: the chart grants\n  %s\nconfig/rbac grants\n  %s", role, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
	if compared == 0 {
		t.Error("dist/install.yaml has no ClusterRole customer-operator-manager-role to compare the chart with")
	}
}

func rulesOf(t *testing.T, u *unstructured.Unstructured) []rbacv1.PolicyRule {
	t.Helper()
	var r rbacv1.ClusterRole
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
		t.Fatalf("decoding ClusterRole %s: %v", u.GetName(), err)
	}
	return r.Rules
}

// grants flattens rules into sorted group/resource/verb triples, so rules written
// in another order or grouping compare equal.
func grants(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, fmt.Sprintf("%s/%s %s", g, res, v))
				}
			}
		}
		for _, u := range r.NonResourceURLs {
			for _, v := range r.Verbs {
				out = append(out, fmt.Sprintf("url:%s %s", u, v))
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
