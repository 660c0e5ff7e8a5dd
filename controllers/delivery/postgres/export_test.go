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

package postgres

import "time"

// BatchStats says how many batches the Sender sent, with how many deliveries.
func (s *Sender) BatchStats() (batches, rows int64) { return s.batches.Load(), s.rows.Load() }

// WithFlusherIdle sets how long a flusher waits for work before it ends.
func WithFlusherIdle(d time.Duration) Option { return func(s *Sender) { s.idle = d } }

// WithConnIdle sets how long a connection stays open unused.
func WithConnIdle(d time.Duration) Option { return func(s *Sender) { s.idleConn = d } }
