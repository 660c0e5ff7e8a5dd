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

package generic

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
	"google.golang.org/protobuf/types/known/structpb"

	crmv1alpha1 "github.com/customer-operator/customer-operator/api/v1alpha1"
	"github.com/customer-operator/customer-operator/webhookserver/providers"
)

// Limits bound what a tenant's expressions may cost the shared webhook server,
// as Kubernetes bounds the CEL rules of a CRD.
type Limits struct {
	// EstimatedCost is the largest cost CEL's estimator may give an expression
	// at compile time, with the body and every list or string in it as large
	// as MaxBodyBytes.
	EstimatedCost uint64
	// RuntimeCost is the cost one event's expressions may spend when they run
	// (the items expression, once per request, has the same budget).
	RuntimeCost uint64
	// MaxBodyBytes is the size the estimator assumes for the body and for the
	// strings and lists in it: none can be larger.
	MaxBodyBytes int64
}

// BindFlags binds the limits' flags, with DefaultLimits as their defaults.
// MaxBodyBytes is the webhook server's body limit, set by the caller.
func (l *Limits) BindFlags(fs *flag.FlagSet) {
	fs.Uint64Var(&l.RuntimeCost, "generic-runtime-cost-limit", DefaultLimits.RuntimeCost, "CEL cost one event's expressions of a generic CustomerSource may spend (Kubernetes' per-rule limit for CRDs); past it the event is rejected, expression_failed.")
	fs.Uint64Var(&l.EstimatedCost, "generic-estimated-cost-limit", DefaultLimits.EstimatedCost, "Largest cost CEL may estimate for one expression of a generic CustomerSource, with every list and string of the body as large as --webhook-max-body-bytes; past it the source is Ready=False, InvalidExpression. Give the controllers and the webhook server the same value.")
}

// DefaultLimits are Kubernetes' limits for the CEL rules of a CRD: the static
// estimated cost of all of a CRD's rules (one hundred million: a single pass
// over every list of the body fits, a nested one does not), and the runtime
// cost of one rule (one million).
var DefaultLimits = Limits{EstimatedCost: 100_000_000, RuntimeCost: 1_000_000, MaxBodyBytes: 1 << 20}

var (
	limitsMu sync.RWMutex
	limits   = DefaultLimits
)

// SetLimits replaces the limits; sources compiled since keep the limits they
// were compiled with, so it is called once, before serving.
func SetLimits(l Limits) {
	if l.EstimatedCost == 0 {
		l.EstimatedCost = DefaultLimits.EstimatedCost
	}
	if l.RuntimeCost == 0 {
		l.RuntimeCost = DefaultLimits.RuntimeCost
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultLimits.MaxBodyBytes
	}
	limitsMu.Lock()
	limits = l
	limitsMu.Unlock()
	cache.Clear()
}

func currentLimits() Limits {
	limitsMu.RLock()
	defer limitsMu.RUnlock()
	return limits
}

// ReasonExpression is an event an expression failed on at run time (422): an
// error, a result of the wrong type, or the runtime cost limit.
const ReasonExpression = "expression_failed"

// Variables of the expressions.
const (
	varBody    = "body"
	varHeaders = "headers"
	varEvent   = "event"
)

// The environment has the standard library, the string and encoder extensions
// and optional types: nothing that reads a clock, a file or the network, so an
// expression sees its event and nothing else.
var newEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(varBody, cel.DynType),
		cel.Variable(varHeaders, cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable(varEvent, cel.DynType),
		ext.Strings(ext.StringsVersion(2)),
		ext.Encoders(),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(crmv1alpha1.MaxExpressionLength),
	)
})

// newCombinedEnv is newEnv for the program combine makes of a source's
// expressions, each of which newEnv has bounded already.
var newCombinedEnv = sync.OnceValues(func() (*cel.Env, error) {
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	return env.Extend(cel.ParserExpressionSizeLimit(maxCombined * (crmv1alpha1.MaxExpressionLength + len("(\n\n),"))))
})

// ExpressionError is an expression that does not compile, type-check or fit
// the estimated cost limit.
type ExpressionError struct {
	// Field is the expression's path, e.g. spec.generic.mapping.email.
	Field string
	// Message is CEL's.
	Message string
}

func (e *ExpressionError) Error() string { return e.Field + ": " + e.Message }

// sizeEstimator gives every value of unknown size the body's largest size: no
// string or list decoded from the body can be larger.
type sizeEstimator struct{ max uint64 }

func (e sizeEstimator) EstimateSize(checker.AstNode) *checker.SizeEstimate {
	return &checker.SizeEstimate{Min: 0, Max: e.max}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// sizeCost charges a call by the strings it reads and by the strings, lists and
// maps it makes. CEL's own runtime costs key on the overload the type-checker
// chose; over dyn JSON it chooses none, and `s + s` would cost 1 however long
// s is, so that doubling a string in a loop would never reach the limit.
type sizeCost struct{}

func (sizeCost) CallCost(_, _ string, args []ref.Val, result ref.Val) *uint64 {
	var n uint64
	for _, a := range args {
		n += bytesOf(a)
	}
	n += bytesOf(result)
	cost := 1 + uint64(math.Ceil(float64(n)*common.StringTraversalCostFactor))
	switch r := result.(type) {
	case traits.Lister:
		if size, ok := r.Size().(types.Int); ok {
			cost += uint64(size)
		}
	case traits.Mapper:
		if size, ok := r.Size().(types.Int); ok {
			cost += uint64(size)
		}
	}
	return &cost
}

func bytesOf(v ref.Val) uint64 {
	switch x := v.(type) {
	case types.String:
		return uint64(len(x))
	case types.Bytes:
		return uint64(len(x))
	}
	return 0
}

// result is the kind of value an expression must give; dyn passes the check
// and is checked when it runs.
type result int

const (
	resString result = iota
	resID
	resBool
	resTime
	resList
	resMap
)

func (r result) accepts(t *cel.Type) bool {
	if t.IsExactType(cel.DynType) || t.Kind() == types.AnyKind || t.Kind() == types.NullTypeKind {
		return true
	}
	switch r {
	case resString:
		return t.Kind() == types.StringKind
	case resID:
		return t.Kind() == types.StringKind || t.Kind() == types.IntKind || t.Kind() == types.UintKind
	case resBool:
		return t.Kind() == types.BoolKind
	case resTime:
		return t.Kind() == types.TimestampKind || t.Kind() == types.IntKind || t.Kind() == types.StringKind || t.Kind() == types.DoubleKind
	case resList:
		return t.Kind() == types.ListKind
	case resMap:
		return t.Kind() == types.MapKind
	}
	return false
}

func (r result) String() string {
	return [...]string{"a string", "a string or an integer", "a bool", "a timestamp, an integer or a string", "a list", "a map"}[r]
}

// program is one compiled expression.
type program struct {
	field string
	src   string
	prg   cel.Program
	// slot is the expression's place in the result of the source's combined
	// program (see combine), or -1.
	slot int
	// headers is whether the expression reads the headers variable.
	headers bool
}

func compileOne(env *cel.Env, l Limits, field string, expr crmv1alpha1.Expression, want result) (*program, error) {
	if expr == "" {
		return nil, nil
	}
	if len(expr) > crmv1alpha1.MaxExpressionLength {
		return nil, &ExpressionError{Field: field, Message: fmt.Sprintf("longer than %d characters", crmv1alpha1.MaxExpressionLength)}
	}
	ast, iss := env.Compile(string(expr))
	if iss.Err() != nil {
		return nil, &ExpressionError{Field: field, Message: iss.Err().Error()}
	}
	if !want.accepts(ast.OutputType()) {
		return nil, &ExpressionError{Field: field, Message: fmt.Sprintf("evaluates to %s, not %s", ast.OutputType(), want)}
	}
	est, err := env.EstimateCost(ast, sizeEstimator{max: uint64(l.MaxBodyBytes)})
	if err != nil {
		return nil, &ExpressionError{Field: field, Message: fmt.Sprintf("estimating its cost: %v", err)}
	}
	if est.Max > l.EstimatedCost {
		return nil, &ExpressionError{Field: field, Message: fmt.Sprintf("estimated cost %d exceeds the limit of %d: bound the lists it iterates, or iterate fewer of them", est.Max, l.EstimatedCost)}
	}
	prg, err := env.Program(ast, cel.CostLimit(l.RuntimeCost), cel.CostTracking(sizeCost{}), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, &ExpressionError{Field: field, Message: err.Error()}
	}
	headers := false
	for _, r := range ast.NativeRep().ReferenceMap() {
		headers = headers || r.Name == varHeaders
	}
	return &program{field: field, src: string(expr), prg: prg, slot: -1, headers: headers}, nil
}

// compiled is a generic source's expressions, ready to run.
type compiled struct {
	auth crmv1alpha1.GenericAuthentication
	l    Limits
	// fields name the expressions an event's identity came from, as a
	// rejection of the event names them.
	fields providers.EventFields

	items, id, typ, at, deleted, ignore *program

	externalID, displayName, companyName, email, phone, taxID, language, lifecycle *program
	taxExempt, approved                                                            *program
	contacts, addresses, attributes                                                *program
	createdAt, updatedAt                                                           *program

	// all is the event's expressions as one program (see combine), or nil.
	all cel.Program
	// untracked is all without runtime cost tracking, when costBound
	// proves that no body and headers the webhook server passes can make
	// it cost more than the runtime limit; nil otherwise. bound is that
	// proven cost, 0 when there is none.
	untracked cel.Program
	bound     uint64
	// headers is whether an expression reads the headers variable: if none
	// does, a request's headers are not copied for them.
	headers bool
}

// Compile compiles and type-checks every expression of spec and estimates its
// cost; the first that fails is an *ExpressionError naming its field.
func Compile(spec *crmv1alpha1.GenericSource) (*compiled, error) {
	if spec == nil {
		return nil, &ExpressionError{Field: "spec.generic", Message: "required when provider is generic"}
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("building the CEL environment: %w", err)
	}
	c := &compiled{auth: spec.Authentication, l: currentLimits()}
	ev, m := &spec.Events, &spec.Mapping
	const pe, pm = "spec.generic.events.", "spec.generic.mapping."
	if ev.ID == "" {
		return nil, &ExpressionError{Field: pe + "id", Message: "required"}
	}
	if m.ExternalID == "" {
		return nil, &ExpressionError{Field: pm + "externalID", Message: "required"}
	}
	for _, e := range []struct {
		dst   **program
		field string
		expr  crmv1alpha1.Expression
		want  result
	}{
		{&c.items, pe + "items", ev.Items, resList},
		{&c.id, pe + "id", ev.ID, resID},
		{&c.typ, pe + "type", ev.Type, resString},
		{&c.at, pe + "time", ev.Time, resTime},
		{&c.deleted, pe + "deleted", ev.Deleted, resBool},
		{&c.ignore, pe + "ignore", ev.Ignore, resBool},
		{&c.externalID, pm + "externalID", m.ExternalID, resID},
		{&c.displayName, pm + "displayName", m.DisplayName, resString},
		{&c.companyName, pm + "companyName", m.CompanyName, resString},
		{&c.email, pm + "email", m.Email, resString},
		{&c.phone, pm + "phone", m.Phone, resString},
		{&c.taxID, pm + "taxID", m.TaxID, resString},
		{&c.taxExempt, pm + "taxExempt", m.TaxExempt, resBool},
		{&c.approved, pm + "approved", m.Approved, resBool},
		{&c.language, pm + "language", m.Language, resString},
		{&c.lifecycle, pm + "lifecycle", m.Lifecycle, resString},
		{&c.contacts, pm + "contacts", m.Contacts, resList},
		{&c.addresses, pm + "addresses", m.Addresses, resList},
		{&c.createdAt, pm + "providerCreatedAt", m.ProviderCreatedAt, resTime},
		{&c.updatedAt, pm + "providerUpdatedAt", m.ProviderUpdatedAt, resTime},
		{&c.attributes, pm + "attributes", m.Attributes, resMap},
	} {
		p, err := compileOne(env, c.l, e.field, e.expr, e.want)
		if err != nil {
			return nil, err
		}
		*e.dst = p
		c.headers = c.headers || p != nil && p.headers
	}
	c.all, c.untracked, c.bound = c.combine()
	c.fields = providers.EventFields{ID: c.id.field}
	if c.typ != nil {
		c.fields.Type = c.typ.field
	}
	if c.at != nil {
		c.fields.Time = c.at.field
	}
	return c, nil
}

// maxCombined bounds the expressions combine puts into one program.
const maxCombined = 32

// combine makes one program of an event's expressions, so that an event is
// one evaluation, with one activation and one cost tracker, rather than one
// per expression. The program gives a list with each expression's value at
// its slot; an ignored event gives only ignore's, as reading the event stops
// there. Each expression has been compiled, type-checked and estimated on
// its own; the combined program runs them under the runtime cost limit of
// the whole event. An event it fails on is run again expression by
// expression (eventRun), which names the expression that failed. nil if it
// does not compile: the expressions' own programs are enough.
//
// When costBound proves the program can never cost more than the runtime
// limit, it is also built without the cost tracker (untracked, with the
// bound), which then only slows it down; an event it fails on is run again
// expression by expression, tracked, as before.
func (c *compiled) combine() (all, untracked cel.Program, bound uint64) {
	env, err := newCombinedEnv()
	if err != nil {
		return nil, nil, 0
	}
	var src strings.Builder
	if c.ignore != nil {
		c.ignore.slot = 0
		src.WriteString("(\n" + c.ignore.src + "\n) ? [true] : ")
	}
	// Slot 0 is ignore's: false whenever the rest are evaluated.
	src.WriteString("[false")
	slot := 1
	for _, p := range c.perEvent() {
		if p == nil || p == c.ignore {
			continue
		}
		p.slot = slot
		slot++
		// The newlines end a trailing // comment.
		src.WriteString(",(\n" + p.src + "\n)")
	}
	src.WriteString("]")
	ast, iss := env.Compile(src.String())
	if iss.Err() != nil {
		return nil, nil, 0
	}
	all, err = env.Program(ast, cel.CostLimit(c.l.RuntimeCost), cel.CostTracking(sizeCost{}), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, 0
	}
	bound, ok := costBound(ast.NativeRep().Expr(), c.l.MaxBodyBytes, c.items == nil)
	if !ok || bound > c.l.RuntimeCost {
		return all, nil, 0
	}
	untracked, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return all, nil, 0
	}
	return all, untracked, bound
}

// eventProgram is the combined program for a request: untracked only when
// its body and headers are within the sizes its bound assumed.
func (c *compiled) eventProgram(bodyBytes, headerBytes int64) cel.Program {
	if c.untracked != nil && bodyBytes <= c.l.MaxBodyBytes && headerBytes <= c.l.MaxBodyBytes {
		return c.untracked
	}
	return c.all
}

// perEvent is the expressions run per event, in the order they are read.
func (c *compiled) perEvent() []*program {
	return []*program{c.ignore, c.id, c.externalID, c.typ, c.at, c.deleted,
		c.displayName, c.companyName, c.email, c.phone, c.taxID, c.language, c.lifecycle, c.taxExempt, c.approved,
		c.contacts, c.addresses, c.attributes, c.createdAt, c.updatedAt}
}

// vars are the expressions' variables; a request's events share one, with
// the event replaced.
type vars struct {
	body, event any
	headers     map[string]string
}

var _ interpreter.Activation = (*vars)(nil)

func (v *vars) ResolveName(name string) (any, bool) {
	switch name {
	case varBody:
		return v.body, true
	case varHeaders:
		return v.headers, true
	case varEvent:
		return v.event, true
	}
	return nil, false
}

func (*vars) Parent() interpreter.Activation { return nil }

// eventRun evaluates one event's expressions within its cost budget: all at
// once with the combined program, or, when there is none or it failed, one
// by one, so that a failure names its expression and the event's cost is
// the sum of the expressions read before it.
type eventRun struct {
	vars *vars
	// all is the combined program's result, by slot.
	all   traits.Lister
	spent uint64
	limit uint64
}

// runAll runs the combined program; false if the event is to be run
// expression by expression.
func (r *eventRun) runAll(all cel.Program) bool {
	r.all, r.spent = nil, 0
	if all == nil {
		return false
	}
	out, _, err := all.Eval(r.vars)
	if err != nil {
		return false
	}
	l, ok := out.(traits.Lister)
	if !ok {
		return false
	}
	r.all = l
	return true
}

func (r *eventRun) eval(p *program) (ref.Val, error) {
	if r.all != nil && p.slot >= 0 {
		if n, _ := r.all.Size().(types.Int); int64(p.slot) < int64(n) {
			return r.all.Get(types.Int(p.slot)), nil
		}
	}
	out, det, err := p.prg.Eval(r.vars)
	if det != nil && det.ActualCost() != nil {
		r.spent += *det.ActualCost()
	}
	if err != nil {
		return nil, &ExpressionError{Field: p.field, Message: err.Error()}
	}
	if r.spent > r.limit {
		return nil, &ExpressionError{Field: p.field, Message: fmt.Sprintf("the event's expressions cost more than the runtime limit of %d", r.limit)}
	}
	return out, nil
}

// value is p's value, or nil when p is unset or evaluates to null: a field
// the event leaves out.
func (r *eventRun) value(p *program) (ref.Val, error) {
	if p == nil {
		return nil, nil
	}
	v, err := r.eval(p)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(types.Null); ok {
		return nil, nil
	}
	return v, nil
}

func (r *eventRun) str(p *program, allowInt bool) (string, error) {
	v, err := r.value(p)
	if v == nil || err != nil {
		return "", err
	}
	switch x := v.(type) {
	case types.String:
		return string(x), nil
	case types.Int:
		if allowInt {
			return strconv.FormatInt(int64(x), 10), nil
		}
	case types.Uint:
		if allowInt {
			return strconv.FormatUint(uint64(x), 10), nil
		}
	}
	return "", mistyped(p, v, resString)
}

func mistyped(p *program, v ref.Val, want result) error {
	return &ExpressionError{Field: p.field, Message: fmt.Sprintf("evaluates to %s, not %s", v.Type().TypeName(), want)}
}

func (r *eventRun) boolean(p *program) (bool, error) {
	b, err := r.optBool(p)
	if b == nil || err != nil {
		return false, err
	}
	return *b, nil
}

// optBool is p's bool, or nil when p is unset or evaluates to null.
func (r *eventRun) optBool(p *program) (*bool, error) {
	v, err := r.value(p)
	if v == nil || err != nil {
		return nil, err
	}
	if x, ok := v.(types.Bool); ok {
		return providers.BoolPtr(bool(x)), nil
	}
	return nil, mistyped(p, v, resBool)
}

func (r *eventRun) time(p *program) (time.Time, error) {
	v, err := r.value(p)
	if v == nil || err != nil {
		return time.Time{}, err
	}
	switch x := v.(type) {
	case types.Timestamp:
		return x.UTC(), nil
	case types.Int:
		return time.Unix(int64(x), 0).UTC(), nil
	case types.Double:
		if f := float64(x); !math.IsNaN(f) && !math.IsInf(f, 0) {
			sec, frac := math.Modf(f)
			return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
		}
	case types.String:
		if n, err := strconv.ParseInt(strings.TrimSpace(string(x)), 10, 64); err == nil {
			return time.Unix(n, 0).UTC(), nil
		}
		t, err := providers.ParseTime(string(x))
		if err != nil {
			return time.Time{}, &ExpressionError{Field: p.field, Message: "evaluates to a string that is neither Unix seconds nor RFC 3339"}
		}
		return t, nil
	}
	return time.Time{}, mistyped(p, v, resTime)
}

var structValueType = reflect.TypeFor[*structpb.Value]()

// slot is where a list item's key goes: a string or a bool field of T.
type slot struct {
	str *string
	b   **bool
}

func addressSlot(a *crmv1alpha1.Address, key string) slot {
	switch key {
	case "type":
		return slot{str: (*string)(&a.Type)}
	case "name":
		return slot{str: &a.Name}
	case "line1":
		return slot{str: &a.Line1}
	case "line2":
		return slot{str: &a.Line2}
	case "city":
		return slot{str: &a.City}
	case "state":
		return slot{str: &a.State}
	case "postalCode":
		return slot{str: &a.PostalCode}
	case "country":
		return slot{str: &a.Country}
	case "phone":
		return slot{str: &a.Phone}
	case "email":
		return slot{str: &a.Email}
	case "residential":
		return slot{b: &a.Residential}
	}
	return slot{}
}

func contactSlot(c *crmv1alpha1.Contact, key string) slot {
	switch key {
	case "id":
		return slot{str: &c.ID}
	case "title":
		return slot{str: &c.Title}
	case "firstName":
		return slot{str: &c.FirstName}
	case "lastName":
		return slot{str: &c.LastName}
	case "email":
		return slot{str: &c.Email}
	case "phone":
		return slot{str: &c.Phone}
	case "notificationPreference":
		return slot{str: &c.NotificationPreference}
	}
	return slot{}
}

// list converts a list of maps into the Customer API's type, by the API's
// field names: an unknown name, or a value of the wrong type, is an error.
func list[T any](r *eventRun, p *program, limit int, slotOf func(*T, string) slot) ([]T, error) {
	v, err := r.value(p)
	if v == nil || err != nil {
		return nil, err
	}
	l, ok := v.(traits.Lister)
	if !ok {
		return nil, mistyped(p, v, resList)
	}
	n, _ := l.Size().(types.Int)
	if int(n) > limit {
		return nil, &ExpressionError{Field: p.field, Message: fmt.Sprintf("more than %d items", limit)}
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]T, n)
	for i := range out {
		m, ok := l.Get(types.Int(i)).(traits.Mapper)
		if !ok {
			return nil, &ExpressionError{Field: p.field, Message: fmt.Sprintf("item %d is not a map", i)}
		}
		err := entries(m, func(k, val ref.Val) error {
			key, ok := k.(types.String)
			if !ok {
				return &ExpressionError{Field: p.field, Message: fmt.Sprintf("item %d has a key that is not a string", i)}
			}
			sl := slotOf(&out[i], string(key))
			switch x := val.(type) {
			case types.Null:
				return nil
			case types.String:
				if sl.str != nil {
					*sl.str = string(x)
					return nil
				}
			case types.Bool:
				if sl.b != nil {
					*sl.b = providers.BoolPtr(bool(x))
					return nil
				}
			}
			if sl.str == nil && sl.b == nil {
				return &ExpressionError{Field: p.field, Message: fmt.Sprintf("item %d: unknown field %q", i, key)}
			}
			return &ExpressionError{Field: p.field, Message: fmt.Sprintf("item %d: field %q is %s", i, key, val.Type().TypeName())}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// attributes keeps the string values of a map and drops the null and empty
// ones, so that a sender's absent fields are absent attributes.
func (r *eventRun) attributes(p *program) (map[string]string, error) {
	v, err := r.value(p)
	if v == nil || err != nil {
		return nil, err
	}
	mv, ok := v.(traits.Mapper)
	if !ok {
		return nil, mistyped(p, v, resMap)
	}
	if m, ok := stringAttributes(mv); ok {
		return m, nil
	}
	native, err := v.ConvertToNative(structValueType)
	if err != nil {
		return nil, &ExpressionError{Field: p.field, Message: err.Error()}
	}
	var m map[string]string
	for k, val := range native.(*structpb.Value).GetStructValue().GetFields() {
		switch x := val.GetKind().(type) {
		case *structpb.Value_NullValue:
		case *structpb.Value_StringValue:
			if x.StringValue != "" {
				if m == nil {
					m = make(map[string]string)
				}
				m[k] = x.StringValue
			}
		default:
			return nil, &ExpressionError{Field: p.field, Message: fmt.Sprintf("attribute %q is not a string", k)}
		}
	}
	return m, nil
}

// stringAttributes is attributes for a map of strings and nulls, read as it
// is; false for any other, which is converted to JSON as a whole.
func stringAttributes(mv traits.Mapper) (map[string]string, bool) {
	var m map[string]string
	err := entries(mv, func(k, v ref.Val) error {
		key, ok := k.(types.String)
		if !ok {
			return errNotString
		}
		switch x := v.(type) {
		case types.Null:
		case types.String:
			if x != "" {
				if m == nil {
					m = make(map[string]string)
				}
				m[string(key)] = string(x)
			}
		default:
			return errNotString
		}
		return nil
	})
	return m, err == nil
}

var errNotString = errors.New("not a string")

// entries calls fn with each key and value of m until it returns an error.
// The maps an expression makes and the objects of the body are ranged over
// as the Go maps they hold; CEL's own iterator reflects on each entry.
func entries(m traits.Mapper, fn func(k, v ref.Val) error) error {
	switch native := m.Value().(type) {
	case map[ref.Val]ref.Val:
		for k, v := range native {
			if err := fn(k, v); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for k, v := range native {
			if err := fn(types.String(k), types.DefaultTypeAdapter.NativeToValue(v)); err != nil {
				return err
			}
		}
		return nil
	}
	for it := m.Iterator(); it.HasNext() == types.True; {
		k := it.Next()
		if err := fn(k, m.Get(k)); err != nil {
			return err
		}
	}
	return nil
}
