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

package webhookserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
	"github.com/customer-operator/customer-operator/webhookserver/providers/generic"
)

// Reasons of the Warning Events the webhook server raises on a CustomerSource.
// A rejected request raises "Webhook" + its rejection reason in CamelCase
// (WebhookUnauthorized, WebhookSourceNotReady, WebhookRateLimited, …), at most
// once per reason and EventInterval; repeats show as the Event's series count.
const (
	// EventReasonInvalidEvent: an authenticated event could never be applied; the
	// note names the provider's event id and the field, related is the Customer.
	EventReasonInvalidEvent = "InvalidEvent"
)

// eventReason is the Event reason of a rejection reason: "unauthorized" →
// "WebhookUnauthorized". One reason per kind of rejection keeps them apart:
// client-go folds Events of one reason and object into one series.
func eventReason(rejection string) string {
	var b strings.Builder
	b.WriteString("Webhook")
	upper := true
	for _, r := range rejection {
		if r == '_' || r == '-' {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// maxEventNote is the longest note an events.k8s.io/v1 Event may carry.
const maxEventNote = 1024

// invalidEventBurst and invalidEventEvery bound the Warning Events raised for
// single invalid events of one source; past them an invalid event is told like a
// rejected request (WebhookInvalidCustomer, at most once per EventInterval).
const (
	invalidEventBurst = 10
	invalidEventEvery = 6 * time.Second
)

// sourceState is what the server keeps about one CustomerSource. It lives as
// long as the source: sweep drops it when the source is gone.
type sourceState struct {
	// ref identifies the source in Events: namespace, name and uid only.
	ref *crmv1alpha1.CustomerSource

	// limiter is the source's rateLimit, rebuilt when its generation changes.
	limiter    *rate.Limiter
	generation int64

	// touched is when status.lastEventTime was last written.
	touched time.Time

	// told is when each rejection reason was last raised as an Event.
	told map[string]time.Time

	// invalidEvents bounds the Warning Events raised one per invalid event.
	invalidEvents *rate.Limiter
}

// state returns the source's state, creating it on first use.
func (s *Server) state(src *crmv1alpha1.CustomerSource) *sourceState {
	st, ok := s.sources[src.UID]
	if !ok {
		st = &sourceState{
			ref: &crmv1alpha1.CustomerSource{ObjectMeta: metav1.ObjectMeta{
				Namespace: src.Namespace, Name: src.Name, UID: src.UID}},
			told:          map[string]time.Time{},
			invalidEvents: rate.NewLimiter(rate.Every(invalidEventEvery), invalidEventBurst),
		}
		s.sources[src.UID] = st
	}
	return st
}

// allow applies the source's rate limit to a request of n events, prepaid of
// which an earlier call already took. It is called only once the request is
// authenticated, so strangers cannot spend the provider's allowance. A request
// of more events than the burst could never pass: it is refused 413 rather than
// asked to retry forever.
func (s *Server) allow(src *crmv1alpha1.CustomerSource, n, prepaid int) *rejection {
	if src.Spec.RateLimit == nil {
		return nil
	}
	s.mu.Lock()
	st := s.state(src)
	if st.limiter == nil || st.generation != src.Generation {
		burst := int(src.Spec.RateLimit.Burst)
		if burst < 1 {
			burst = int(src.Spec.RateLimit.EventsPerSecond)
		}
		st.limiter = rate.NewLimiter(rate.Limit(src.Spec.RateLimit.EventsPerSecond), burst)
		st.generation = src.Generation
	}
	l := st.limiter
	s.mu.Unlock()

	if burst := l.Burst(); n > burst {
		return &rejection{status: http.StatusRequestEntityTooLarge, reason: providers.ReasonTooManyEvents, field: "spec.rateLimit.burst",
			message: fmt.Sprintf("%d events in one request, more than the source's rate limit burst of %d", n, burst)}
	}
	if n -= prepaid; n <= 0 {
		return nil
	}
	now := s.now()
	res := l.ReserveN(now, n)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return rateLimited(max(d, time.Second))
	}
	return nil
}

// touchSource records the source's last event time, at most once every 30s per
// source: it is for people, and a status write per request would double the load.
func (s *Server) touchSource(ctx context.Context, src *crmv1alpha1.CustomerSource, at time.Time) {
	s.mu.Lock()
	st := s.state(src)
	if at.Sub(st.touched) < 30*time.Second {
		s.mu.Unlock()
		return
	}
	st.touched = at
	s.mu.Unlock()

	patch := []byte(fmt.Sprintf(`{"status":{"lastEventTime":%q}}`, at.UTC().Format(time.RFC3339)))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.APITimeout)
	defer cancel()
	if err := s.client.Status().Patch(ctx, src.DeepCopy(), client.RawPatch(types.MergePatchType, patch)); err != nil {
		log.FromContext(ctx).WithName("webhook-server").V(1).Info("could not record the source's last event time",
			"source", src.Namespace+"/"+src.Name, "error", err.Error())
	}
}

// noteRejection tells the source's people about a rejected request: at most
// one Warning Event per reason and EventInterval. Between two, the rejections
// are counted in the metrics (and client-go counts the repeats of an Event in
// its series).
func (s *Server) noteRejection(src *crmv1alpha1.CustomerSource, code int, reason, detail string) {
	if s.recorder == nil {
		return
	}
	now := s.now()
	s.mu.Lock()
	st := s.state(src)
	last, told := st.told[reason]
	due := !told || now.Sub(last) >= s.opts.EventInterval
	if due {
		st.told[reason] = now
	}
	ref := st.ref
	s.mu.Unlock()
	if !due {
		return
	}
	answer := fmt.Sprintf("webhook requests answered %d (%s)", code, reason)
	if code == 0 {
		answer = fmt.Sprintf("events rejected (%s)", reason)
	}
	s.emit(ref, nil, eventReason(reason), "Receive", fmt.Sprintf("%s: %s; told at most once every %s, counted in customer_operator_webhook_rejections_total",
		answer, detail, s.opts.EventInterval))
}

// noteInvalidEvent raises a Warning Event naming an event that can never be
// applied; past invalidEventBurst of them lately, it is told as a rejection.
func (s *Server) noteInvalidEvent(src *crmv1alpha1.CustomerSource, ev *providers.Event, rej *EventRejection) {
	if s.recorder == nil {
		return
	}
	s.mu.Lock()
	st := s.state(src)
	ok := st.invalidEvents.Allow()
	ref := st.ref
	s.mu.Unlock()
	if !ok {
		s.noteRejection(src, 0, rej.Reason, fmt.Sprintf("event %q: %s", shortEventID(ev.ID), rej.Error()))
		return
	}
	field := rej.Field
	if field == "" {
		field = "-"
	}
	// The Customer is the related object, so two invalid events of different
	// customers are two Events, not one series.
	customer := &crmv1alpha1.Customer{ObjectMeta: metav1.ObjectMeta{Namespace: src.Namespace,
		Name: CustomerName(ev.Customer.Provider, ev.Customer.ExternalID)}}
	s.emit(ref, customer, EventReasonInvalidEvent, "Ingest",
		fmt.Sprintf("%s event %q (%s) for customer %q rejected (%s), field %s: %s; the rest of its request was applied",
			src.Spec.Provider, shortEventID(ev.ID), ev.Type, ev.Customer.ExternalID, rej.Reason, field, rej.Message))
}

func (s *Server) emit(regarding *crmv1alpha1.CustomerSource, related runtime.Object, reason, action, note string) {
	if len(note) > maxEventNote {
		note = note[:maxEventNote-3] + "..."
	}
	s.recorder.Eventf(regarding, related, corev1.EventTypeWarning, reason, action, "%s", note)
}

// sweep drops the state of sources that are gone (and their metric series), and
// forgets client addresses that earned back their allowance.
func (s *Server) sweep(ctx context.Context) error {
	list := &crmv1alpha1.CustomerSourceList{}
	if err := s.client.List(ctx, list); err != nil {
		return fmt.Errorf("listing CustomerSources: %w", err)
	}
	live := make(map[types.UID]bool, len(list.Items))
	liveKeys := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		live[list.Items[i].UID] = true
		liveKeys[list.Items[i].Namespace+"/"+list.Items[i].Name] = true
	}

	now := s.now()
	var gone []string
	s.mu.Lock()
	for uid, st := range s.sources {
		if !live[uid] {
			delete(s.sources, uid)
			generic.Forget(uid)
			gone = append(gone, st.ref.Namespace+"/"+st.ref.Name)
			continue
		}
		for reason, at := range st.told {
			if now.Sub(at) >= s.opts.EventInterval {
				delete(st.told, reason)
			}
		}
	}
	s.mu.Unlock()

	for _, key := range gone {
		// A source deleted and created again under the same name keeps its series.
		if !liveKeys[key] {
			forgetSource(key)
		}
	}
	s.guard.prune(now, func(uid types.UID) bool { return live[uid] })
	return nil
}
