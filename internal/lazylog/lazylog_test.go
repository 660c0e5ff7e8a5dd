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

package lazylog_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/customer-operator/customer-operator/internal/lazylog"
)

// logLines writes the same lines through l: what a reconcile and the webhook
// server do with their loggers.
func logLines(l logr.Logger) {
	base := l.WithName("controller").WithValues("controller", "customer")
	r := base.WithValues("Customer", klog.KRef("ns", "name"), "namespace", "ns", "name", "name").WithValues("reconcileID", "1234")
	r.Info("reconciled", "requeue", false)
	r.V(1).Info("debug line, written at -v=1 only")
	r.WithName("delivery").Error(errors.New("boom"), "delivery failed", "sink", "receiver")
	// A logger whose values are never used, then one made from it later.
	unused := base.WithValues("unused", "x")
	unused.WithValues("more", 1).Info("late line")
	base.Info("base line")
}

// newZap is the manager's logger (controller-runtime's zap, production
// encoding) with the caller recorded, writing to buf with fixed times.
func newZap(buf *bytes.Buffer, level int) logr.Logger {
	return zap.New(zap.WriteTo(buf), zap.Level(zapcore.Level(-level)), zap.RawZapOpts(uberzapAddCaller()...),
		zap.ConsoleEncoder(func(c *zapcore.EncoderConfig) { c.TimeKey = "" }))
}

func TestLinesAreTheSameAsWithoutTheWrapper(t *testing.T) {
	for _, level := range []int{0, 1} {
		var plain, lazy bytes.Buffer
		// From one line, so that the stack traces of Error match.
		for _, l := range []logr.Logger{newZap(&plain, level), lazylog.New(newZap(&lazy, level))} {
			logLines(l)
		}
		if plain.String() != lazy.String() {
			t.Errorf("at level %d the wrapped logger wrote\n%s\nand the plain one\n%s", level, lazy.String(), plain.String())
		}
		if !strings.Contains(lazy.String(), "lazylog_test.go") {
			t.Errorf("at level %d the lines do not name the caller:\n%s", level, lazy.String())
		}
		if want, got := map[int]int{0: 4, 1: 5}[level], strings.Count(lazy.String(), "lazylog_test.go:"); got < want {
			t.Errorf("at level %d: %d lines, want %d:\n%s", level, got, want, lazy.String())
		}
	}
}

func TestDiscardStaysDiscard(t *testing.T) {
	l := lazylog.New(logr.Discard())
	l.WithValues("a", 1).Info("nothing")
	if l.Enabled() {
		t.Error("a discarding logger is enabled once wrapped")
	}
}
