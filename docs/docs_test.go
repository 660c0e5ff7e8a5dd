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

// Package docs holds the user documentation and the tests that keep it true to
// the code: links resolve, and every flag, condition reason and metric the
// manager has is documented.
package docs

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	// The manager binds the flags of these packages too: --kubeconfig (the
	// client config) and the --zap-* logging flags.
	_ "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/customer-operator/customer-operator/controllers"
	"github.com/customer-operator/customer-operator/webhookserver"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

const (
	root       = ".."
	operations = "operations.md"
)

// maxReadmeLines keeps the README a front page; the reference lives in docs/.
const maxReadmeLines = 250

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return string(b)
}

// markdownFiles are the pages whose links must resolve.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(root, "README.md"), filepath.Join(root, "CHANGELOG.md")}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking docs/: %v", err)
	}
	return files
}

var (
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	atxHeading = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	inlineLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`^\s*\[[^\]]+\]:\s*(\S+)`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// proseLines returns the lines of a Markdown page with those of fenced code
// blocks blanked, so a line's index is still its line number less one.
func proseLines(text string) []string {
	lines := strings.Split(text, "\n")
	inFence := false
	for i, line := range lines {
		if fence.MatchString(line) {
			inFence = !inFence
			lines[i] = ""
		} else if inFence {
			lines[i] = ""
		}
	}
	return lines
}

// githubAnchor is the anchor GitHub gives a heading: lower case, every
// character other than a letter, a digit, '-', '_' or a space dropped, and
// spaces turned into '-'.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}

// anchors lists the anchors of a page's headings, numbering repeats as GitHub
// does (-1, -2, ...), plus explicit <a id> anchors.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range proseLines(text) {
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			a := githubAnchor(m[2])
			if n := seen[a]; n > 0 {
				out[a+"-"+strconv.Itoa(n)] = true
			} else {
				out[a] = true
			}
			seen[a]++
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
	}
	return out
}

func TestGitHubAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"Security model":                         "security-model",
		"A tour of `make dev`":                   "a-tour-of-make-dev",
		"Install, upgrade, uninstall":            "install-upgrade-uninstall",
		"Order, duplicates and deletes":          "order-duplicates-and-deletes",
		"Phasio (customer organisations)":        "phasio-customer-organisations",
		"From outside: `go run ./hack/bench`":    "from-outside-go-run-hackbench",
		"Connect GETTRX and a sink":              "connect-gettrx-and-a-sink",
		"spec.secretRef":                         "specsecretref",
		"Retries & redelivery":                   "retries--redelivery",
		"CustomerSink `Ready`: `EndpointGone`":   "customersink-ready-endpointgone",
		"Versioning of `v1alpha1`":               "versioning-of-v1alpha1",
		"Données personnelles":                   "données-personnelles",
		"snake_case stays":                       "snake_case-stays",
		"Go 1.26 or later":                       "go-126-or-later",
		"What `--webhook-max-body-bytes` bounds": "what---webhook-max-body-bytes-bounds",
	} {
		if got := githubAnchor(heading); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestRelativeLinksResolve follows every relative link of the README, the
// changelog and docs/: the file or directory must exist, and an anchor must
// name a heading of the page it points into.
func TestRelativeLinksResolve(t *testing.T) {
	pageAnchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := pageAnchors[path]; ok {
			return a
		}
		a := anchors(read(t, path))
		pageAnchors[path] = a
		return a
	}
	for _, page := range markdownFiles(t) {
		for i, line := range proseLines(read(t, page)) {
			line = codeSpan.ReplaceAllString(line, "")
			var targets []string
			for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
				targets = append(targets, m[1])
			}
			if m := refLink.FindStringSubmatch(line); m != nil {
				targets = append(targets, m[1])
			}
			for _, target := range targets {
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, anchor, _ := strings.Cut(target, "#")
				resolved := page
				if path != "" {
					resolved = filepath.Join(filepath.Dir(page), filepath.FromSlash(path))
					info, err := os.Stat(resolved)
					if err != nil {
						t.Errorf("%s (line %d): link %q: %v", page, i+1, target, err)
						continue
					}
					if info.IsDir() {
						if anchor != "" {
							t.Errorf("%s (line %d): link %q: an anchor into a directory", page, i+1, target)
						}
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if !strings.HasSuffix(resolved, ".md") {
					t.Errorf("%s (line %d): link %q: an anchor into a file that is not Markdown", page, i+1, target)
					continue
				}
				if !anchorsOf(resolved)[anchor] {
					t.Errorf("%s (line %d): link %q: no heading with anchor %q in %s", page, i+1, target, anchor, resolved)
				}
			}
		}
	}
}

// TestReadmeIsAFrontPage keeps the README short enough to read in minutes.
func TestReadmeIsAFrontPage(t *testing.T) {
	n := strings.Count(read(t, filepath.Join(root, "README.md")), "\n")
	if n > maxReadmeLines {
		t.Errorf("README.md has %d lines, more than %d: move the reference into docs/", n, maxReadmeLines)
	}
}

// section returns the lines of a page from the heading whose text is title to
// the next heading of the same or a higher level.
func section(t *testing.T, text, title string) []string {
	t.Helper()
	var out []string
	level := 0
	for _, line := range proseLines(text) {
		m := atxHeading.FindStringSubmatch(line)
		if level == 0 {
			if len(m) == 3 && m[2] == title {
				level = len(m[1])
			}
			continue
		}
		if len(m) == 3 && len(m[1]) <= level {
			break
		}
		out = append(out, line)
	}
	if level == 0 {
		t.Fatalf("no section %q", title)
	}
	return out
}

// firstCells returns the code spans (without backticks) in the first cell of
// every table row of lines.
func firstCells(lines []string) map[string]bool {
	out := map[string]bool{}
	for _, line := range lines {
		if !strings.HasPrefix(strings.TrimSpace(line), "|") {
			continue
		}
		cells := strings.Split(strings.TrimSpace(line), "|")
		if len(cells) < 2 {
			continue
		}
		for _, span := range codeSpan.FindAllString(cells[1], -1) {
			out[strings.Trim(span, "`")] = true
		}
	}
	return out
}

var (
	flagVar  = regexp.MustCompile(`(?:flag|fs)\.(?:[A-Z][A-Za-z0-9]*Var)\(\s*[^,]+,\s*"([^"]+)"`)
	flagFunc = regexp.MustCompile(`(?:flag|fs)\.(?:Func|BoolFunc|String|Bool|Int|Int64|Uint|Uint64|Float64|Duration)\(\s*"([^"]+)"`)
)

// managerFlags lists the flags the manager defines: its own in main.go, those
// the webhook server and the controllers bind (their Options.BindFlags, the
// ones main.go calls), and those the libraries it imports bind
// (controller-runtime's --kubeconfig and zap's).
func managerFlags(t *testing.T) []string {
	t.Helper()
	src := read(t, filepath.Join(root, "main.go"))
	var names []string
	for _, re := range []*regexp.Regexp{flagVar, flagFunc} {
		for _, m := range re.FindAllStringSubmatch(src, -1) {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatal("found no flag definitions in main.go")
	}
	for _, binder := range []string{"webhookOpts.BindFlags(flag.CommandLine)", "controllerOpts.BindFlags(flag.CommandLine)", "genericLimits.BindFlags(flag.CommandLine)"} {
		if !strings.Contains(src, binder) {
			t.Fatalf("main.go no longer calls %s; bind the flags here as it does", binder)
		}
	}
	cfs := flag.NewFlagSet("components", flag.ContinueOnError)
	(&webhookserver.Options{}).BindFlags(cfs)
	(&controllers.Options{}).BindFlags(cfs)
	(&generic.Limits{}).BindFlags(cfs)
	cfs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if !strings.HasPrefix(f.Name, "test.") {
			names = append(names, f.Name)
		}
	})
	zfs := flag.NewFlagSet("zap", flag.ContinueOnError)
	(&zap.Options{}).BindFlags(zfs)
	zfs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	slices.Sort(names)
	return slices.Compact(names)
}

// TestEveryFlagIsDocumented checks that the flag table of docs/operations.md
// has a row for every flag of the manager, and no row for a flag it lacks.
func TestEveryFlagIsDocumented(t *testing.T) {
	rows := map[string]bool{}
	for cell := range firstCells(section(t, read(t, operations), "Flags")) {
		if strings.HasPrefix(cell, "--") {
			rows[strings.TrimPrefix(cell, "--")] = true
		}
	}
	defined := managerFlags(t)
	for _, name := range defined {
		if !rows[name] {
			t.Errorf("flag --%s has no row in the flag table of docs/%s", name, operations)
		}
	}
	for name := range rows {
		if !slices.Contains(defined, name) {
			t.Errorf("docs/%s documents --%s, which the manager does not define", operations, name)
		}
	}
}

// reasonConstants returns the string values of the constants whose names start
// with one of prefixes, in the Go files of dir (tests excluded).
func reasonConstants(t *testing.T, dir string, prefixes ...string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatalf("parsing %s: %v", path, err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name.Name, p) }) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatalf("%s: constant %s: %v", dir, name.Name, err)
					}
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// TestEveryConditionReasonIsInTroubleshooting checks that the troubleshooting
// table of docs/operations.md explains every reason a condition can carry: the
// API's reasons and the delivery engine's pause reasons.
func TestEveryConditionReasonIsInTroubleshooting(t *testing.T) {
	rows := firstCells(section(t, read(t, operations), "Troubleshooting"))
	var reasons []string
	for _, dir := range []string{"api/v1alpha1", "controllers/engine"} {
		found := reasonConstants(t, filepath.Join(root, dir), "Reason")
		if len(found) == 0 {
			t.Fatalf("found no Reason constants in %s", dir)
		}
		reasons = append(reasons, found...)
	}
	for _, reason := range reasons {
		if !rows[reason] {
			t.Errorf("condition reason %s has no row in the troubleshooting table of docs/%s", reason, operations)
		}
	}
}

var metricName = regexp.MustCompile(`Name:\s*"(customer_operator_[a-z0-9_]+)"`)

// registeredMetrics lists the customer_operator_* metrics defined in the
// manager's packages.
func registeredMetrics(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, dir := range []string{"main.go", "controllers", "webhookserver", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			for _, m := range metricName.FindAllStringSubmatch(read(t, path), -1) {
				names = append(names, m[1])
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v", dir, err)
		}
	}
	if len(names) == 0 {
		t.Fatal("found no customer_operator_ metrics")
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TestEveryMetricIsDocumented checks that the metrics table of
// docs/operations.md has a row for every metric the manager registers, and
// none for a metric it does not.
func TestEveryMetricIsDocumented(t *testing.T) {
	rows := firstCells(section(t, read(t, operations), "Metrics"))
	registered := registeredMetrics(t)
	for _, name := range registered {
		if !rows[name] {
			t.Errorf("metric %s has no row in the metrics table of docs/%s", name, operations)
		}
	}
	for name := range rows {
		if strings.HasPrefix(name, "customer_operator_") && !slices.Contains(registered, name) {
			t.Errorf("docs/%s documents %s, which the manager does not register", operations, name)
		}
	}
}

// TestEveryRejectionReasonIsDocumented checks that docs/providers.md explains
// every reason the webhook server answers with: its own and the providers'.
func TestEveryRejectionReasonIsDocumented(t *testing.T) {
	rows := firstCells(section(t, read(t, "providers.md"), "Rejection reasons"))
	for _, dir := range []string{"webhookserver", "webhookserver/providers"} {
		found := reasonConstants(t, filepath.Join(root, dir), "Reason", "reason")
		if len(found) == 0 {
			t.Fatalf("found no reason constants in %s", dir)
		}
		for _, reason := range found {
			if !rows[reason] {
				t.Errorf("rejection reason %s (%s) has no row in the rejection reasons of docs/providers.md", reason, dir)
			}
		}
	}
}

// TestEverySampleIsReferenced checks that each manifest of config/samples is
// named by the README or a page of docs/, so a reader finds it.
func TestEverySampleIsReferenced(t *testing.T) {
	var pages strings.Builder
	for _, page := range markdownFiles(t) {
		pages.WriteString(read(t, page))
	}
	samples, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil || len(samples) == 0 {
		t.Fatalf("found no samples: %v", err)
	}
	for _, sample := range samples {
		name := filepath.Base(sample)
		if name == "kustomization.yaml" {
			continue
		}
		if !strings.Contains(pages.String(), "config/samples/"+name) {
			t.Errorf("config/samples/%s is not referenced by the README or docs/", name)
		}
	}
}
