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
	"math"
	"strconv"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// costBound is an upper bound of what the runtime cost tracker (CEL's
// costs, with sizeCost for every call) can charge for one evaluation of
// the program e, for any body of at most maxInput bytes and any headers of
// at most maxInput bytes (each name and value, and two bytes per header);
// ok is false when the program is outside what the bound covers, and then
// it must run tracked.
//
// The tracker charges each evaluated step once: at most 1 for an
// identifier, a select or index and its constant, a list 10, a map 30, and
// a call 1 + ceil(string bytes of its arguments and result / 10) + the
// item count of a list or map it gives; &&, || and ?: are no calls. With no
// comprehension every node is evaluated at most once, so the sum over the
// nodes of a bound of each one's charge bounds the whole. A comprehension,
// a message literal, a variable other than the body, the event (when it is
// the body) and the headers, or a call boundCall does not list makes the
// bound unknown.
//
// Sizes are linear in the sizes of the values read from the input. A value
// at a path of the body of r raw bytes is a string of at most 3r bytes
// (encoding/json makes each invalid byte U+FFFD, three bytes) or a list or
// map of n items, and then, with the largest item count m and the largest
// string of L bytes strictly within it, 2n + 2m + L/3 <= r (each item and
// its comma or bracket take at least two raw bytes, each string at least a
// third of a byte per decoded byte). So the cost a program puts on one
// path is at most a weight times r. Paths not one within another are
// disjoint parts of the input, and a path within another is within its
// bytes: the total is at most maxInput times the largest sum of weights
// along a chain of paths from the root.
func costBound(e ast.Expr, maxInput int64, eventIsBody bool) (uint64, bool) {
	b := &bounder{eventIsBody: eventIsBody, body: newPath(), headers: newPath()}
	if _, ok := b.walk(e); !ok {
		return 0, false
	}
	b.settle()
	total := b.cost.k + float64(maxInput)*(b.body.chain()+b.headers.chain())
	if math.IsInf(total, 0) || math.IsNaN(total) || total >= math.MaxInt64 {
		return 0, false
	}
	return uint64(math.Ceil(total)), true
}

// pathNode is a path of the body or the headers, with the cost's weights on
// its value: its string bytes, its item count, and the bytes of any string
// and the items of any list or map strictly within it.
type pathNode struct {
	children                 map[string]*pathNode
	str, items, bstr, bitems float64
	// The variables that stand for those four sizes.
	vars [4]*variable
}

type variable struct {
	node *pathNode
	kind int
}

const (
	kindStr = iota
	kindItems
	kindBelowStr
	kindBelowItems
)

func newPath() *pathNode {
	p := &pathNode{children: map[string]*pathNode{}}
	for k := range p.vars {
		p.vars[k] = &variable{p, k}
	}
	return p
}

func (p *pathNode) child(key string) *pathNode {
	c, ok := p.children[key]
	if !ok {
		c = newPath()
		p.children[key] = c
	}
	return c
}

// chain is the largest sum of weights, per raw byte, along a chain of paths
// from p. As a string, p's value puts 3*str on a raw byte; as a list or
// map, at most the largest of items/2, bitems/2 and 3*bstr (a linear cost
// under 2n + 2m + L/3 <= r is largest at a vertex).
func (p *pathNode) chain() float64 {
	best := 0.0
	for _, c := range p.children {
		best = math.Max(best, c.chain())
	}
	w := math.Max(3*p.str, math.Max(math.Max(p.items/2, p.bitems/2), 3*p.bstr))
	return w + best
}

// lin is k plus a non-negative combination of input variables.
type lin struct {
	k float64
	t map[*variable]float64
}

func constant(k float64) lin { return lin{k: k} }

func term(v *variable) lin { return lin{t: map[*variable]float64{v: 1}} }

func (a lin) plus(b lin) lin {
	out := lin{k: a.k + b.k, t: make(map[*variable]float64, len(a.t)+len(b.t))}
	for v, c := range a.t {
		out.t[v] += c
	}
	for v, c := range b.t {
		out.t[v] += c
	}
	return out
}

func (a lin) times(f float64) lin {
	out := lin{k: a.k * f, t: make(map[*variable]float64, len(a.t))}
	for v, c := range a.t {
		out.t[v] = c * f
	}
	return out
}

// size bounds a value: the bytes of its string and its item count, and the
// bytes of any string and the items of any list or map strictly within it.
// An optional (opt) has them for the value it holds; as an argument of a
// call it is neither a string nor a list.
type size struct {
	str, items, bstr, bitems lin
	opt                      bool
	// path is where the value is in the input, if it is the value there.
	path *pathNode
}

func pathSize(p *pathNode, opt bool) size {
	return size{str: term(p.vars[kindStr]), items: term(p.vars[kindItems]),
		bstr: term(p.vars[kindBelowStr]), bitems: term(p.vars[kindBelowItems]), opt: opt, path: p}
}

// below is any value strictly within v.
func below(v size, opt bool) size {
	return size{str: v.bstr, items: v.bitems, bstr: v.bstr, bitems: v.bitems, opt: opt}
}

func (a size) plus(b size) size {
	return size{str: a.str.plus(b.str), items: a.items.plus(b.items), bstr: a.bstr.plus(b.bstr), bitems: a.bitems.plus(b.bitems)}
}

// within is v as an element of a list or map: its sizes all strictly within.
func (a size) within() (str, items lin) {
	return a.str.plus(a.bstr), a.items.plus(a.bitems)
}

// charged is what a call is charged for v as an argument or result.
func (a size) charged() (str, items lin) {
	if a.opt {
		return lin{}, lin{}
	}
	return a.str, a.items
}

type bounder struct {
	eventIsBody   bool
	body, headers *pathNode
	cost          lin
}

func (b *bounder) charge(l lin) { b.cost = b.cost.plus(l) }

func (b *bounder) walk(e ast.Expr) (size, bool) {
	switch e.Kind() {
	case ast.LiteralKind:
		b.charge(constant(1))
		switch v := e.AsLiteral().(type) {
		case types.String:
			return size{str: constant(float64(len(v)))}, true
		case types.Bytes:
			return size{str: constant(float64(len(v)))}, true
		}
		return size{}, true
	case ast.IdentKind:
		b.charge(constant(1))
		switch e.AsIdent() {
		case varBody:
			return pathSize(b.body, false), true
		case varEvent:
			if b.eventIsBody {
				return pathSize(b.body, false), true
			}
		case varHeaders:
			return pathSize(b.headers, false), true
		}
		return size{}, false
	case ast.SelectKind:
		b.charge(constant(1))
		sel := e.AsSelect()
		op, ok := b.walk(sel.Operand())
		if !ok {
			return size{}, false
		}
		if sel.IsTestOnly() {
			return size{}, true
		}
		// Selecting in an optional gives an optional.
		return memberOf(op, "s:"+sel.FieldName(), op.opt), true
	case ast.ListKind:
		b.charge(constant(10))
		elems := e.AsList().Elements()
		out := size{items: constant(float64(len(elems)))}
		for _, el := range elems {
			s, ok := b.walk(el)
			if !ok {
				return size{}, false
			}
			str, items := s.within()
			out.bstr, out.bitems = out.bstr.plus(str), out.bitems.plus(items)
		}
		return out, true
	case ast.MapKind:
		b.charge(constant(30))
		entries := e.AsMap().Entries()
		out := size{items: constant(float64(len(entries)))}
		for _, en := range entries {
			me := en.AsMapEntry()
			for _, x := range []ast.Expr{me.Key(), me.Value()} {
				s, ok := b.walk(x)
				if !ok {
					return size{}, false
				}
				str, items := s.within()
				out.bstr, out.bitems = out.bstr.plus(str), out.bitems.plus(items)
			}
		}
		return out, true
	case ast.CallKind:
		return b.call(e.AsCall())
	}
	// Comprehensions and message literals.
	return size{}, false
}

// memberOf is the value at key in v: the input's value at that path if v
// is one, otherwise any value strictly within v.
func memberOf(v size, key string, opt bool) size {
	if v.path != nil {
		return pathSize(v.path.child(key), opt)
	}
	return below(v, opt)
}

func (b *bounder) call(c ast.CallExpr) (size, bool) {
	var args []ast.Expr
	if c.IsMemberFunction() {
		args = append(args, c.Target())
	}
	args = append(args, c.Args()...)
	sizes := make([]size, len(args))
	for i, a := range args {
		s, ok := b.walk(a)
		if !ok {
			return size{}, false
		}
		sizes[i] = s
	}
	fn := c.FunctionName()
	switch fn {
	// Evaluated without a call: no call cost.
	case operators.LogicalAnd, operators.LogicalOr:
		b.charge(constant(1))
		return size{}, true
	case operators.Conditional:
		b.charge(constant(1))
		out := sizes[1].plus(sizes[2])
		out.opt = sizes[1].opt && sizes[2].opt
		return out, true
	case operators.Index, operators.OptIndex, operators.OptSelect:
		b.charge(constant(2))
		opt := fn != operators.Index || sizes[0].opt
		if key, ok := constantKey(args[1]); ok {
			return memberOf(sizes[0], key, opt), true
		}
		return below(sizes[0], opt), true
	}
	res, ok := boundCall(fn, sizes)
	if !ok {
		return size{}, false
	}
	// sizeCost: 1 + ceil(bytes/10) + items, the ceiling at most 1 more.
	bytes, items := res.charged()
	for _, s := range sizes {
		str, _ := s.charged()
		bytes = bytes.plus(str)
	}
	b.charge(constant(2).plus(bytes.times(0.1)).plus(items))
	return res, true
}

// constantKey names the member a constant index or field reads: a string
// key and a field of that name are the same member, an integer index is
// another.
func constantKey(e ast.Expr) (string, bool) {
	if e.Kind() != ast.LiteralKind {
		return "", false
	}
	switch v := e.AsLiteral().(type) {
	case types.String:
		return "s:" + string(v), true
	case types.Int:
		return "i:" + strconv.FormatInt(int64(v), 10), true
	}
	return "", false
}

// boundCall bounds the result of the calls the bound covers, given its
// arguments' (the target first).
func boundCall(fn string, args []size) (size, bool) {
	switch fn {
	case operators.Equals, operators.NotEquals, operators.Less, operators.LessEquals,
		operators.Greater, operators.GreaterEquals, operators.LogicalNot, operators.In,
		operators.Negate, "size", "contains", "startsWith", "endsWith", "matches",
		"int", "uint", "double", "bool", "timestamp", "duration", "hasValue":
		// A bool, a number or a time.
		return size{}, true
	case "optional.none":
		return size{opt: true}, true
	case operators.Add:
		var out size
		for _, a := range args {
			out = out.plus(a)
		}
		return out, true
	case "orValue", "value":
		// The optional's value or the default: no larger than both.
		var out size
		for _, a := range args {
			out = out.plus(a)
		}
		return out, true
	case "or":
		var out size
		for _, a := range args {
			out = out.plus(a)
		}
		out.opt = true
		return out, true
	case "optional.of", "optional.ofNonZeroValue", "dyn":
		if len(args) != 1 {
			return size{}, false
		}
		out := args[0]
		out.path = nil
		out.opt = fn != "dyn" || args[0].opt
		return out, true
	case "string":
		if len(args) != 1 || args[0].opt {
			return size{}, false
		}
		// A string or bytes as it is, or a number, bool, time or duration
		// in at most 64 characters; lists and maps have no conversion.
		return size{str: args[0].str.plus(constant(64))}, true
	case "lowerAscii", "upperAscii", "trim":
		if len(args) != 1 || args[0].opt {
			return size{}, false
		}
		// Made of the string's runes: an invalid byte becomes U+FFFD.
		return size{str: args[0].str.times(3)}, true
	}
	return size{}, false
}

// settle puts the cost's weights on the paths they are on.
func (b *bounder) settle() {
	for v, c := range b.cost.t {
		switch v.kind {
		case kindStr:
			v.node.str += c
		case kindItems:
			v.node.items += c
		case kindBelowStr:
			v.node.bstr += c
		case kindBelowItems:
			v.node.bitems += c
		}
	}
}
