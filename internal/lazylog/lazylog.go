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

// Package lazylog defers a logger's WithValues until the logger writes a line.
//
// controller-runtime gives every reconcile a logger with the controller, the
// object's kind, namespace and name and a reconcile id, and the webhook
// server one for every request: zap encodes those values when they are added
// (the object reference through reflection), for loggers that, on the success
// path, never write a line. Wrapped, the values are kept as given and encoded
// once, by the first line written, with the output unchanged.
//
// The values are read when the line is written, not when they are added: a
// value that is a pointer to something changed in between logs the change.
// The values the operator and controller-runtime add are strings and values.
package lazylog

import (
	"sync"

	"github.com/go-logr/logr"
)

// New wraps l so that its WithValues costs an append until a line is written.
func New(l logr.Logger) logr.Logger {
	s := l.GetSink()
	if s == nil {
		return l
	}
	// The wrapper's Info and Error are one more frame between the caller and
	// the sink.
	if cd, ok := s.(logr.CallDepthLogSink); ok {
		s = cd.WithCallDepth(1)
	}
	return logr.New(&sink{base: s, resolved: &resolved{}})
}

// sink is base with the values kv still to add.
type sink struct {
	base logr.LogSink
	kv   []any
	// resolved is base with kv added, made by the first line written and
	// shared by the copies of this sink.
	resolved *resolved
}

type resolved struct {
	once sync.Once
	sink logr.LogSink
}

var (
	_ logr.LogSink          = &sink{}
	_ logr.CallDepthLogSink = &sink{}
)

func (s *sink) target() logr.LogSink {
	if len(s.kv) == 0 {
		return s.base
	}
	s.resolved.once.Do(func() { s.resolved.sink = s.base.WithValues(s.kv...) })
	return s.resolved.sink
}

// Init does nothing: the wrapped sink had its own from the logr.New that
// made it, and a second would skip one more frame for the caller.
func (s *sink) Init(logr.RuntimeInfo) {}

// Enabled does not depend on the values.
func (s *sink) Enabled(level int) bool { return s.base.Enabled(level) }

func (s *sink) Info(level int, msg string, kv ...any) { s.target().Info(level, msg, kv...) }

func (s *sink) Error(err error, msg string, kv ...any) { s.target().Error(err, msg, kv...) }

// WithValues keeps kv after the values already kept, in a slice of its own.
func (s *sink) WithValues(kv ...any) logr.LogSink {
	all := make([]any, 0, len(s.kv)+len(kv))
	all = append(append(all, s.kv...), kv...)
	return &sink{base: s.base, kv: all, resolved: &resolved{}}
}

// WithName names the sink now: a name does not depend on the values, and
// costs little.
func (s *sink) WithName(name string) logr.LogSink {
	return &sink{base: s.base.WithName(name), kv: s.kv, resolved: &resolved{}}
}

func (s *sink) WithCallDepth(depth int) logr.LogSink {
	cd, ok := s.base.(logr.CallDepthLogSink)
	if !ok {
		return s
	}
	return &sink{base: cd.WithCallDepth(depth), kv: s.kv, resolved: &resolved{}}
}
